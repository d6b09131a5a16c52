"""Every shell command in README.md works as printed, in a fresh clone of this repository.

The commands are read from the README at test time: its fenced ``bash``/``sh`` blocks and every
table whose first column is headed ``command``. Each runs with bash in a fresh ``git clone`` of
HEAD (plus the working tree's uncommitted changes to tracked files, so what you are about to commit
is what is tested; untracked files are left behind, as in a real clone), with this environment's
executables first on PATH and PYTHONPATH set to the clone. Cheap commands run as written; the
expensive ones run as the closest cheap command that still reads every flag, file and config the
README names (see ``plan``): a renamed flag, file or config fails here.

Two clones, run side by side: "fresh" without ../shared (what a new user sees), and "data" with
../shared beside the clone (what CI and the project machine see), where the snakemake runs
(checked as plans, which depend on the data) are checked again; "data" is skipped where this
machine has no ../shared/data.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SHARED = REPO.parent / "shared"
TIMEOUT_S = 300  # per command; a README command slower than this needs an entry in `plan`


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


def plan(command: str) -> Check:
    """The check for one README command. ``&&`` chains are planned part by part; ``[...]`` marks
    optional arguments, which are checked as given (they must exist)."""
    command = re.sub(r"\[([^\]]*)\]", r"\1", command)
    parts = [plan_part(p.strip()) for p in command.split("&&")]
    return Check(readme=command, run=" && ".join(p.run for p in parts),
                 how="; ".join(p.how for p in parts if p.how),
                 expect=sum((p.expect for p in parts), ()), files=sum((p.files for p in parts), ()),
                 plans=any(p.plans for p in parts), skip="; ".join(p.skip for p in parts if p.skip))


def plan_part(command: str) -> Check:
    """The check for one simple command (first matching rule; anything else runs as written)."""
    words = shlex.split(command)
    if words[:2] == ["pip", "install"]:
        skip = "" if find_spec("setuptools") else "no setuptools here: pip cannot dry-run offline"
        return Check(command, f"{shlex.quote(sys.executable)} -m pip install --dry-run --no-deps "
                     f"--no-build-isolation --no-index {shlex.join(words[2:])}",
                     how="pip: offline dry run without dependencies (the install downloads 1.7 GB; "
                         ".ci/run installs for real)", skip=skip)
    if words[:3] in (["python", "-m", "venv"], ["python3", "-m", "venv"]):
        return Check(command, f"{shlex.join(words[:3])} --without-pip {shlex.join(words[3:])}",
                     how="venv: without pip (pip is not used from it here)")
    if words[:3] == ["python", "-m", "pytest"]:
        return Check(command, f"{command} --collect-only", how="pytest: collect only (running the "
                     "suite from inside the suite would recurse)", expect=(r"\d+ tests? collected",))
    if words[0] == "snakemake" and not {"-n", "--dry-run", "--dryrun", "--lint", "--report"} & set(words):
        return Check(command, f"{command} -n", how="snakemake: dry run (-n); the run takes minutes to hours",
                     expect=("This was a dry-run",), plans=True)
    if words[0] in ("python", "python3") and len(words) > 1 and words[1].startswith("benchmarks/"):
        flags = tuple(rf"^\s+(-\w, )?{re.escape(w.split('=')[0])}\b" for w in words[2:] if w.startswith("-"))
        return Check(command, f"{shlex.join(words[:2])} --help", expect=flags,
                     how="benchmark: --help must list the README's flags (a measurement takes minutes)")
    if words[0] == "snakemake" and "--report" in words:
        return Check(command, command, files=(words[words.index("--report") + 1],))
    return Check(command, command)


CHECKS = [plan(c) for c in readme_commands(README.read_text())]


@dataclass
class Result:
    rc: int | None
    output: str


@dataclass
class Clone:
    """A fresh clone in which checks run one after another (as a user types them), in a thread."""
    with_data: bool
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vqdna-readme-")))
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=1))

    @property
    def path(self) -> Path:
        return self.root / "vqdna"

    def start(self, checks: list[Check]) -> dict[str, Future]:
        """Clone, then queue every check; one future per README command."""
        cloned = self.pool.submit(self.clone)
        return {c.readme: self.pool.submit(self.check, c, cloned) for c in checks}

    def clone(self) -> None:
        git = ["git", "-C", str(REPO)]
        head = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
        subprocess.run(["git", "clone", "-q", str(REPO), str(self.path)], check=True, capture_output=True)
        subprocess.run(["git", "-C", str(self.path), "checkout", "-q", head.strip()], check=True)
        diff = subprocess.run(git + ["diff", "HEAD", "--binary"], capture_output=True, check=True).stdout
        if diff:
            subprocess.run(["git", "-C", str(self.path), "apply", "-"], input=diff, check=True)
        if self.with_data:
            (self.root / "shared").symlink_to(SHARED, target_is_directory=True)

    def check(self, check: Check, cloned: Future) -> Result:
        if cloned.exception() is not None:
            return Result(None, f"clone failed: {cloned.exception()}")
        env = dict(os.environ, PYTHONPATH=str(self.path),
                   PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
        try:
            done = subprocess.run(["bash", "-c", check.run], cwd=self.path, env=env, timeout=TIMEOUT_S,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        except subprocess.TimeoutExpired as err:
            return Result(None, f"timed out after {TIMEOUT_S} s\n{err.output or ''}")
        return Result(done.returncode, done.stdout)


@pytest.fixture(scope="module")
def clones(request):
    """Variant name -> (clone, check futures by README command), for the selected tests' checks.
    Both clones work in parallel."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the README test runs the commands in a fresh clone")
    selected = [item.callspec.params for item in request.session.items
                if item.originalname == "test_readme_command_works"]
    queued = {name: [p["check"] for p in selected if p["variant"] == name and not p["check"].skip]
              for name in ("fresh", "data") if name == "fresh" or (SHARED / "data").is_dir()}
    started = {}
    for name, checks in queued.items():
        if checks:
            clone = Clone(with_data=name == "data")
            started[name] = (clone, clone.start(checks))
    yield started
    for clone, _ in started.values():
        clone.pool.shutdown(wait=True)
        shutil.rmtree(clone.root, ignore_errors=True)


def test_readme_has_commands():
    """The parser finds the README's install block and entry-point table (so an edit that hides them
    from it does not pass silently)."""
    commands = readme_commands(README.read_text())
    assert any(c.startswith("python -m pytest") for c in commands), commands
    assert sum(c.startswith("snakemake") for c in commands) >= 3, commands


def test_parser_reads_blocks_and_command_tables():
    text = ("```bash\npip install -e .   # install\n$ snakemake \\\n  --cores all\n```\n\n"
            "```yaml\na: 1\n```\n"
            "| command | what |\n|---|---|\n| `snakemake -n` / `snakemake --lint` | plan |\n\n"
            "| run | time |\n|---|---|\n| `snakemake --cores all` | 1 h |\n")
    assert readme_commands(text) == [
        "pip install -e .", "snakemake --cores all", "snakemake -n", "snakemake --lint"]
    assert plan("snakemake --cores all --configfile config/smoke.yaml").run.endswith(" -n")
    help_check = plan("python benchmarks/throughput.py [--quick]")
    assert help_check.run.endswith("--help")
    assert re.search(help_check.expect[0], "options:\n  --quick   fewer steps", re.M)
    assert not re.search(help_check.expect[0], "usage:\n    python benchmarks/throughput.py [--quick]", re.M)


CASES = [("fresh", c) for c in CHECKS] + [("data", c) for c in CHECKS if c.plans]


@pytest.mark.parametrize("variant,check", CASES, ids=[f"{v}: {c.readme}" for v, c in CASES])
def test_readme_command_works(clones, variant, check):
    if check.skip:
        pytest.skip(f"{check.readme!r}: {check.skip}")
    if variant == "data" and not (SHARED / "data").is_dir():
        pytest.skip(f"no ../shared/data beside {REPO}: the plans are checked without it only")
    clone, futures = clones[variant]
    result = futures[check.readme].result()
    where = (f"README command {check.readme!r} ran as {check.run!r}"
             + (f" ({check.how})" if check.how else "") + f" in {clone.path}")
    assert result.rc == 0, f"{where}: exit {result.rc}\n{result.output[-4000:]}"
    for pattern in check.expect:
        assert re.search(pattern, result.output, re.M), \
            f"{where}: no match for {pattern!r} in\n{result.output[-4000:]}"
    for name in check.files:
        assert (clone.path / name).is_file(), f"{where}: it did not write {name}"
