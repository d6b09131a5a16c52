"""The code style every contributor is held to: ruff with the project's config (pyproject.toml:
110-character lines, pyflakes, pycodestyle, sorted imports), and ruff's formatter."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


RUFF = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")


def test_ruff_check_is_clean():
    done = subprocess.run([RUFF, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_code_is_formatted():
    done = subprocess.run([RUFF, "format", "--check", "."], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
