"""Making and maintaining a tracked reference: :func:`publish` copies a finished run's results
(:data:`PUBLISHED`) into a reference folder; :func:`summarize` reruns the summary notebook on a
reference's own records (after a change to the statistics), with :func:`pretext_baselines`
borrowed from another reference where its records predate them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from vqdna.analysis.provenance import read_json, read_time_log
from vqdna.workflow import study

#: what a published reference holds, relative to the run's workdir
PUBLISHED = (
    "**/metrics.json",
    "summary/*.md",
    "summary/*.csv",
    "summary/figures/*.png",
    "summary/*.html",
    "sarscov2/*.md",
    "sarscov2/*.csv",
    "sarscov2/*.png",
    "sarscov2/*.html",
    "index.md",
    "provenance.json",
)


def publish(workdir: str | Path, dest: str | Path, time_log: str | Path | None = None) -> list[Path]:
    """Copy a finished run's results (:data:`PUBLISHED`) from ``workdir`` into ``dest``, replacing
    what was there (written to a temporary folder first, so a failure leaves the old reference)."""
    workdir, dest = Path(workdir), Path(dest)
    if not (workdir / "provenance.json").exists():
        raise FileNotFoundError(
            f"{workdir}/provenance.json: not a finished run (run `snakemake --cores all` first)"
        )
    files = sorted(
        {
            p
            for pattern in PUBLISHED
            for p in workdir.glob(pattern)
            if p.is_file() and "reference" not in p.relative_to(workdir).parts
        }
    )  # not the tracked one
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for path in files:
            target = tmp / path.relative_to(workdir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        if time_log is not None:
            record = json.loads((tmp / "provenance.json").read_text())
            record["run"] = read_time_log(time_log)
            (tmp / "provenance.json").write_text(json.dumps(record, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed publish leaves nothing behind
        raise
    shutil.rmtree(dest, ignore_errors=True)
    tmp.replace(dest)
    return [dest / p.relative_to(workdir) for p in files]


def pretext_baselines(source: str | Path):
    """The position and neighbour baselines of every pre-training record of the reference
    ``source`` -> DataFrame (tokenizer, replicate, position_loss, neighbour_loss, source): for a reference
    whose records predate them and whose pre-training used the same settings and seeds."""
    import pandas as pd

    source = Path(source)
    machine = read_json(source / "provenance.json").get("machine", {}).get("cpu", "?")
    rows = [
        {
            "tokenizer": r["tokenizer"],
            "replicate": r.get("replicate", 0),
            "position_loss": r["position_loss"],
            "neighbour_loss": r["neighbour_loss"],
            "source": f"{source.name} (same settings and seeds; {machine})",
        }
        for r in map(read_json, sorted(source.glob("models/**/metrics.json")))
        if r.get("stage") == "pretrain" and r.get("position_loss") is not None
    ]
    return pd.DataFrame(rows, columns=["tokenizer", "replicate", "position_loss", "neighbour_loss", "source"])


def summarize(reference: str | Path, baselines_from: str | Path | None = None) -> Path:
    """Rerun the summary notebook on a tracked reference's own records (after a change to the
    statistics, no training rerun needed), writing its summary/ in place. ``baselines_from``:
    another reference whose pre-training records carry the pretext baselines these lack; they
    are written to summary/pretext_baselines.csv and the pretext table names their source."""
    from vqdna.workflow.notebook import run_notebook

    reference = Path(reference)
    paths = sorted(
        str(p) for p in reference.glob("**/metrics.json") if p.relative_to(reference).parts[0] != "sarscov2"
    )
    if not paths:
        raise FileNotFoundError(f"{reference}: no metrics records to summarize")
    extra = ""
    if baselines_from is not None:
        extra = str(reference / "summary" / "pretext_baselines.csv")
        (reference / "summary").mkdir(exist_ok=True)
        pretext_baselines(baselines_from).to_csv(extra, index=False)
    notebook = reference / "summary" / "summary.ipynb"
    provenance = read_json(reference / "provenance.json")
    # the run's own ablation plan, from the config it recorded
    ablation_runs = study.ablation_runs(provenance["config"]) if provenance.get("config") else []
    run_notebook(
        Path(__file__).resolve().parents[2] / "notebooks" / "summary.py",
        notebook,
        {
            "metrics_paths": paths,
            "ablation_runs": ablation_runs,
            "out_dir": str(reference / "summary"),
            "profile": provenance.get("profile", reference.name),
            "pretext_baselines": extra,
        },
    )
    notebook.unlink()  # the rendered HTML beside it is what a reference keeps
    return reference / "summary"
