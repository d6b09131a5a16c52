"""Who made a run: commit, config hash, library versions and machine (``provenance.json``,
written by the workflow's ``provenance`` rule), the run's wall time and peak memory from a
``/usr/bin/time -v`` log, and reading a run's JSON files with an error that names the file."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

from vqdna.core import numerics

#: the libraries whose versions a run's provenance records
LIBRARIES = (
    "torch",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "tokenizers",
    "snakemake",
    "papermill",
    "nbconvert",
    "umap-learn",
)


def config_hash(config: dict) -> str:
    """sha256 of the config as canonical JSON (key order and formatting do not matter)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def _git(*args: str, cwd: Path) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(config: dict, repo: str | Path = ".") -> dict:
    """Who made a run: commit (and whether tracked files differed from it), config hash,
    library versions, machine and thread settings."""
    repo = Path(repo)
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    memory = None
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        memory = round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30, 1)
    return {
        "commit": _git("rev-parse", "HEAD", cwd=repo) or None,
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no", cwd=repo)),
        "profile": config.get("profile"),
        "config_sha256": config_hash(config),
        "config": config,
        "python": platform.python_version(),
        "libraries": versions,
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "memory_gib": memory,
            "platform": platform.platform(),
            "threads_per_job": config.get("threads_per_job"),
        },
        "numerics": numerics.describe(config.get("numerics")),
    }


def read_time_log(path: str | Path) -> dict:
    """Wall time (s) and peak resident memory (MiB) from a ``/usr/bin/time -v`` log."""
    text = Path(path).read_text()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if not wall or not rss:
        raise ValueError(f"{path}: not a /usr/bin/time -v log (no wall time or maximum resident set size)")
    seconds = 0.0
    for part in wall.group(1).split(":"):
        seconds = seconds * 60 + float(part)
    return {
        "wall_time_s": seconds,
        "peak_rss_mib": int(rss.group(1)) / 1024,
        "command": (re.search(r'Command being timed: "(.*)"', text) or [None, None])[1],
    }


def read_json(path: Path) -> dict:
    """A run's JSON file (a metrics record or ``provenance.json``), or a ValueError naming it."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable metrics JSON ({error})") from error
