"""Fetching GUE (DNABERT-2's Genome Understanding Evaluation) into ``data.gue_dir``.

The official zip's sha256 is not published, so ``data.gue_download.sha256`` ships unset and
nothing is unpacked until the user supplies a hash they trust (config value or
``trusted_sha256=``); a mismatch refuses too. Offline it fails at once, saying where to put the
unpacked files.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

GUE_URL = "https://drive.google.com/uc?export=download&id=1uOrwlf07qGQuruXqGXWMpPn8avBoW7T-"


def download_gue(config: dict, trusted_sha256: str | None = None) -> Path:
    """Fetch the official GUE zip, check its sha256 and unpack it so ``data.gue_dir`` exists.

    The expected hash is ``trusted_sha256`` or ``data.gue_download.sha256``; with neither, or
    on a mismatch, nothing is unpacked (the error shows the downloaded file's hash so a user who
    trusts it can pass it). Offline, it fails at once saying where to put the files.
    """
    settings = config.get("data", {})
    gue_dir = settings.get("gue_dir")
    if not gue_dir:
        raise ValueError("set data.gue_dir to the folder GUE should be unpacked to")
    gue_dir = Path(gue_dir)
    if gue_dir.is_dir() and any(gue_dir.iterdir()):
        return gue_dir
    fetch = settings.get("gue_download", {}) or {}
    expected = trusted_sha256 or fetch.get("sha256")
    url = fetch.get("url", GUE_URL)
    where = (
        f"download GUE.zip yourself ({url}) and unpack it so that {gue_dir}/tf/0/train.csv exists "
        f"(layout <gue_dir>/<group>/<task>/{{train,dev,test}}.csv), or point data.gue_dir at it"
    )
    gue_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=gue_dir.parent) as tmp:
        archive = Path(tmp) / "GUE.zip"
        try:
            timeout = fetch.get("timeout_s", 15)
            with urllib.request.urlopen(url, timeout=timeout) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out)
        except (urllib.error.URLError, OSError) as error:
            raise RuntimeError(f"cannot fetch GUE ({error}); offline: {where}") from error
        actual = hashlib.sha256(archive.read_bytes()).hexdigest()
        if expected is None:
            raise RuntimeError(
                f"no trusted sha256 for GUE (data.gue_download.sha256 is unset); the "
                f"downloaded file has sha256 {actual}: pass it if you trust it"
            )
        if actual != expected.lower():
            raise RuntimeError(f"GUE archive sha256 {actual} does not match the trusted {expected}")
        _unpack_gue(archive, Path(tmp) / "unpacked", gue_dir)
    return gue_dir


def _unpack_gue(archive: Path, scratch: Path, gue_dir: Path) -> None:
    """Unzip (refusing absolute or ``..`` member paths) and move the folder holding ``tf/`` to ``gue_dir``."""
    with zipfile.ZipFile(archive) as bundle:
        for member in bundle.namelist():
            if member.startswith("/") or ".." in Path(member).parts:
                raise RuntimeError(f"{archive}: unsafe member path {member!r}")
        bundle.extractall(scratch)
    roots = [p.parent.parent for p in scratch.rglob("tf/0") if "__MACOSX" not in p.parts]
    if not roots:
        raise RuntimeError(f"{archive}: no tf/0 folder inside; not the GUE archive")
    shutil.move(str(roots[0]), str(gue_dir))
