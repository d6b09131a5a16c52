"""Every shell command in README.md and docs/*.md works as printed, in a fresh clone of this
repository, and the README's library quick start runs.

The commands are read from the documents at test time: its fenced ``bash``/``sh`` blocks and every
table whose first column is headed ``command``. Each runs with bash in a fresh ``git clone`` of
HEAD (plus the working tree's uncommitted changes to tracked files, so what you are about to commit
is what is tested; untracked files are left behind, as in a real clone), with this environment's
executables first on PATH and PYTHONPATH set to the clone. Cheap commands run as written; the
expensive ones run as the closest cheap command that still reads every flag, file and config the
README names (see ``plan``): a renamed flag, file or config fails here.

Two variants: "fresh", without ../shared (what a new user sees), and "data", with ../shared beside
the clone (what CI and the project machine see), where the snakemake runs (checked as plans, which
depend on the data) are checked again; "data" is skipped where this machine has no ../shared/data.
Two workers share the checks, each with its own clones (the commands do not depend on each other).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
#: every document whose commands are checked: the README and the guides it links
DOCUMENTS = [README, *sorted((REPO / "docs").glob("*.md"))]
SHARED = REPO.parent / "shared"
TIMEOUT_S = 600  # per command; a README command slower than this needs an entry in `plan`


@dataclass(frozen=True)
class Check:
    """How one README command is checked: what runs, why it differs from the README (empty: it runs
    as written), patterns its output must match (``re``, multi-line) and files it must leave behind."""

    readme: str
    run: str
    how: str = ""
    expect: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    plans: bool = False  # a run turned into a plan: it depends on ../shared, so the "data" clone runs it too
    skip: str = ""


def readme_commands(text: str) -> list[str]:
    """Shell commands of a README: each line of its bash/sh blocks (comments dropped, ``\\``
    continuations joined) and each backticked command in the first column of a ``command`` table."""
    commands = []
    for block in re.findall(r"^[ \t]*```(?:bash|sh|shell|console)[ \t]*\n(.*?)^[ \t]*```", text, re.M | re.S):
        for line in re.sub(r"\s*\\\n\s*", " ", block).splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip().removeprefix("$ ")
            if line:
                commands.append(line)
    table: list[list[str]] = []
    for line in text.splitlines() + [""]:
        if line.strip().startswith("|"):
            table.append([cell.strip() for cell in line.strip().strip("|").split("|")])
            continue
        if len(table) > 2 and table[0][0].lower() == "command":
            commands += [c for row in table[2:] for c in re.findall(r"`([^`]+)`", row[0])]
        table = []
    return commands


def offline_build_missing() -> str:
    """Why pip cannot build this project's metadata here without an index ('' if it can): the
    pyproject's build requirements must be installed, and setuptools before 70.1 also needs wheel."""
    try:
        import tomllib
    except ImportError:
        return "Python < 3.11 has no tomllib to read the build requirements"
    for line in tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]:
        requirement = Requirement(line)
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            return f"{requirement.name} is not installed here: pip cannot build the project offline"
        if not requirement.specifier.contains(installed, prereleases=True):
            return f"{requirement.name} {installed} is installed here, the build needs {requirement}"
    if Version(metadata.version("setuptools")) < Version("70.1") and find_spec("wheel") is None:
        return "setuptools before 70.1 needs the wheel package to build, and it is not installed here"
    return ""


def plan(command: str) -> Check:
    """The check for one README command. ``&&`` chains are planned part by part; ``[...]`` marks
    optional arguments, which are checked as given (they must exist)."""
    command = re.sub(r"\[([^\]]*)\]", r"\1", command)
    parts = [plan_part(p.strip()) for p in command.split("&&")]
    return Check(
        readme=command,
        run=" && ".join(p.run for p in parts),
        how="; ".join(p.how for p in parts if p.how),
        expect=sum((p.expect for p in parts), ()),
        files=sum((p.files for p in parts), ()),
        plans=any(p.plans for p in parts),
        skip="; ".join(p.skip for p in parts if p.skip),
    )


def plan_part(command: str) -> Check:
    """The check for one simple command (first matching rule; anything else runs as written)."""
    words = shlex.split(command)
    if words[:2] == ["/usr/bin/time", "-v"]:  # timing wrapper: check the command it times
        inner = [
            w for i, w in enumerate(words[2:]) if w not in ("2>", ">") and words[2:][i - 1] not in ("2>", ">")
        ]
        return dataclasses.replace(plan_part(shlex.join(inner)), readme=command)
    if words[:3] == ["python", "-m", "vqdna.analysis.reference"] and words[3:4] == ["compare"]:
        reference = words[5]
        return Check(
            command,
            f"{shlex.join(words[:4])} {shlex.quote(reference)} {shlex.quote(reference)}",
            how="compare: the tracked reference against itself (a fresh clone has no run to compare)",
            expect=(r"\d+ identical, 0 differs",),
        )
    if words[:3] == ["python", "-m", "vqdna.analysis.reference"]:
        flags = tuple(rf"{re.escape(w.split('=')[0])}\b" for w in words[4:] if w.startswith("-"))
        return Check(
            command,
            f"{shlex.join(words[:4])} --help",
            expect=flags,
            how="reference: --help must list the README's flags (publishing needs a finished run)",
        )
    if words[:2] == ["pip", "install"]:
        skip = offline_build_missing()
        return Check(
            command,
            f"{shlex.quote(sys.executable)} -m pip install --dry-run --no-deps "
            f"--no-build-isolation --no-index {shlex.join(words[2:])}",
            how="pip: offline dry run without dependencies (the install downloads 1.7 GB; "
            ".ci/run installs for real)",
            skip=skip,
        )
    if words[:3] in (["python", "-m", "venv"], ["python3", "-m", "venv"]):
        return Check(
            command,
            f"{shlex.join(words[:3])} --without-pip {shlex.join(words[3:])}",
            how="venv: without pip (pip is not used from it here)",
        )
    if words[:3] == ["python", "-m", "pytest"]:
        return Check(
            command,
            f"{command} --collect-only",
            how="pytest: collect only (running the suite from inside the suite would recurse)",
            expect=(r"\d+ tests? collected",),
        )
    if words[0] == "snakemake" and not {"-n", "--dry-run", "--dryrun", "--lint", "--report"} & set(words):
        return Check(
            command,
            f"{command} -n",
            how="snakemake: dry run (-n); the run takes minutes to hours",
            expect=("This was a dry-run",),
            plans=True,
        )
    if words[0] in ("python", "python3") and len(words) > 1 and words[1].startswith("benchmarks/"):
        flags = tuple(rf"^\s+(-\w, )?{re.escape(w.split('=')[0])}\b" for w in words[2:] if w.startswith("-"))
        return Check(
            command,
            f"{shlex.join(words[:2])} --help",
            expect=flags,
            how="benchmark: --help must list the README's flags (a measurement takes minutes)",
        )
    if words[0] == "snakemake" and "--report" in words:
        return Check(
            command,
            command,
            files=(words[words.index("--report") + 1],),
            skip="the report gathers a finished run's outputs, and a fresh clone has none (every "
            "output is untracked, so that `snakemake --cores all` runs the study)",
        )
    return Check(command, command)


CHECKS = [plan(c) for c in dict.fromkeys(c for d in DOCUMENTS for c in readme_commands(d.read_text()))]


@dataclass
class Result:
    rc: int | None
    output: str
    clone: Path | None = None


def make_clone(root: Path, with_data: bool) -> Path:
    """A fresh clone of HEAD at root/vqdna, with the working tree's changes to tracked files applied,
    and ../shared beside it if ``with_data``."""
    path, git = root / "vqdna", ["git", "-C", str(REPO)]
    head = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
    subprocess.run(["git", "clone", "-q", str(REPO), str(path)], check=True, capture_output=True)
    subprocess.run(["git", "-C", str(path), "checkout", "-q", head.strip()], check=True)
    diff = subprocess.run(git + ["diff", "HEAD", "--binary"], capture_output=True, check=True).stdout
    if diff:
        subprocess.run(["git", "-C", str(path), "apply", "-"], input=diff, check=True)
    if with_data:
        (root / "shared").symlink_to(SHARED, target_is_directory=True)
    return path


class Clones:
    """Fresh clones in one temporary folder: one per worker thread and variant, made on first use,
    so two workers share the checks (and the cores) without sharing a clone."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="vqdna-readme-"))
        self.local = threading.local()
        self.made = itertools.count()

    def run(self, check: Check, with_data: bool) -> Result:
        clones = self.local.__dict__.setdefault("clones", {})
        try:
            if with_data not in clones:
                root = self.root / str(next(self.made))
                root.mkdir()
                clones[with_data] = make_clone(root, with_data)
        except (OSError, subprocess.CalledProcessError) as err:
            return Result(None, f"clone failed: {err}")
        path = clones[with_data]
        env = dict(
            os.environ,
            PYTHONPATH=str(path),
            PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        )
        try:
            done = subprocess.run(
                ["bash", "-c", check.run],
                cwd=path,
                env=env,
                timeout=TIMEOUT_S,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        except subprocess.TimeoutExpired as err:
            output = err.output.decode(errors="replace") if isinstance(err.output, bytes) else err.output
            return Result(None, f"timed out after {TIMEOUT_S} s\n{output or ''}", path)
        return Result(done.returncode, done.stdout, path)


@pytest.fixture(scope="module")
def results(request):
    """(variant, README command) -> future Result, for the selected tests' checks, run by two workers."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the README test runs the commands in a fresh clone")
    selected = [
        (item.callspec.params["variant"], item.callspec.params["check"])
        for item in request.session.items
        if item.originalname == "test_readme_command_works"
    ]
    clones, pool = Clones(), ThreadPoolExecutor(max_workers=2)
    yield {
        (variant, check.readme): pool.submit(clones.run, check, variant == "data")
        for variant, check in selected
        if not check.skip and (variant == "fresh" or (SHARED / "data").is_dir())
    }
    pool.shutdown(wait=True, cancel_futures=True)
    shutil.rmtree(clones.root, ignore_errors=True)


def test_readme_has_commands():
    """The parser finds the README's install block and entry-point table (so an edit that hides them
    from it does not pass silently)."""
    commands = readme_commands(README.read_text())
    assert any(c.startswith("python -m pytest") for c in commands), commands
    assert sum(c.startswith("snakemake") for c in commands) >= 3, commands


def test_parser_reads_blocks_and_command_tables():
    text = (
        "```bash\npip install -e .   # install\n$ snakemake \\\n  --cores all\n```\n\n"
        "```yaml\na: 1\n```\n"
        "| command | what |\n|---|---|\n| `snakemake -n` / `snakemake --lint` | plan |\n\n"
        "| run | time |\n|---|---|\n| `snakemake --cores all` | 1 h |\n"
    )
    assert readme_commands(text) == [
        "pip install -e .",
        "snakemake --cores all",
        "snakemake -n",
        "snakemake --lint",
    ]
    assert plan("snakemake --cores all --configfile config/smoke.yaml").run.endswith(" -n")
    help_check = plan("python benchmarks/throughput.py [--quick]")
    assert help_check.run.endswith("--help")
    assert re.search(help_check.expect[0], "options:\n  --quick   fewer steps", re.M)
    assert not re.search(help_check.expect[0], "usage:\n    python benchmarks/throughput.py [--quick]", re.M)


CASES = [("fresh", c) for c in CHECKS] + [("data", c) for c in CHECKS if c.plans]


@pytest.mark.parametrize("variant,check", CASES, ids=[f"{v}: {c.readme}" for v, c in CASES])
def test_readme_command_works(results, variant, check):
    if check.skip:
        pytest.skip(f"{check.readme!r}: {check.skip}")
    if variant == "data" and not (SHARED / "data").is_dir():
        pytest.skip(f"no ../shared/data beside {REPO}: the plans are checked without it only")
    result = results[variant, check.readme].result()
    where = (
        f"README command {check.readme!r} ran as {check.run!r}"
        + (f" ({check.how})" if check.how else "")
        + f" in {result.clone}"
    )
    assert result.rc == 0, f"{where}: exit {result.rc}\n{result.output[-4000:]}"
    for pattern in check.expect:
        assert re.search(pattern, result.output, re.M), (
            f"{where}: no match for {pattern!r} in\n{result.output[-4000:]}"
        )
    for name in check.files:
        assert (result.clone / name).is_file(), f"{where}: it did not write {name}"


def test_readme_quick_start_runs(tmp_path):
    """The README's library quick start, as printed: train an HRQ tokenizer with the study's
    settings, encode, decode, save and load it back."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (code,) = [b for b in blocks if "train_tokenizer(" in b]
    (tmp_path / "quick_start.py").write_text(code)
    done = subprocess.run(
        [sys.executable, "quick_start.py"], cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "ACGTTGCAACGTAGGCTAGCTTAGGC" in done.stdout  # decoded back to the bases
    assert (tmp_path / "my_hrq" / "vqvae.pt").is_file()


def test_ci_runs_the_readme_test_command():
    """.ci/run calls the README's test command as printed (plus the Slurm opt-in), so the CI
    measures what a user runs."""
    (command,) = [c for c in readme_commands(README.read_text()) if c.startswith("python -m pytest")]
    ci = [
        line
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if "pytest" in line and not line.startswith("#")
    ]
    assert ci == [f"VQDNA_TEST_SLURM=1 {command}"]
