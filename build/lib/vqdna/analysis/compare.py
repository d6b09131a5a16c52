"""A fresh run against a tracked reference: :func:`compare` diffs every metrics JSON field by
field (timings, :data:`TIMING_KEYS`, skipped); :func:`judge` decides whether the differences
are noise: identical, within noise (every differing field inside its own uncertainty and the
summary's cell means, verdicts and pretext decisions unchanged) or differs beyond noise;
:func:`compare_markdown` writes the report."""

from __future__ import annotations

import re
from pathlib import Path

from vqdna.analysis.provenance import read_json

#: fields that measure speed, not results: never compared
TIMING_KEYS = ("steps_per_s", "train_time_s", "wall_time_s", "seconds", "items_per_s")


def _differences(reference, fresh, prefix: str = "") -> list[tuple[str, object, object]]:
    """(key path, reference value, fresh value) for every non-timing leaf that differs."""
    if isinstance(reference, dict) and isinstance(fresh, dict):
        out = []
        for key in sorted(set(reference) | set(fresh)):
            if any(t in key for t in TIMING_KEYS):
                continue
            out += _differences(reference.get(key), fresh.get(key), f"{prefix}{key}.")
        return out
    if isinstance(reference, list) and isinstance(fresh, list) and len(reference) == len(fresh):
        return [
            d for i, (a, b) in enumerate(zip(reference, fresh)) for d in _differences(a, b, f"{prefix}{i}.")
        ]
    return [] if reference == fresh else [(prefix.rstrip("."), reference, fresh)]


def compare(workdir: str | Path, reference: str | Path, ran_only: bool = False) -> list[dict]:
    """Every metrics JSON of ``reference`` against the same file of the run in ``workdir``:
    one row per file with status ``identical``, ``differs`` (and each differing key with both
    values) or ``missing``; files only the fresh run has are ``extra``. ``ran_only``: compare
    only the files the run wrote (a rerun of part of the study, e.g. one task from scratch)."""
    workdir, reference = Path(workdir), Path(reference)
    for folder in (workdir, reference):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder to compare")
    ref_files = {p.relative_to(reference) for p in reference.glob("**/metrics.json")}
    new_files = {p.relative_to(workdir) for p in workdir.glob("**/metrics.json")}
    new_files = {p for p in new_files if "reference" not in p.parts}  # results/reference/ is not the run
    if ran_only:
        ref_files &= new_files
    rows = []
    for rel in sorted(ref_files | new_files):
        if rel not in new_files:
            rows.append({"file": str(rel), "status": "missing", "differences": []})
        elif rel not in ref_files:
            rows.append({"file": str(rel), "status": "extra", "differences": []})
        else:
            diffs = _differences(read_json(reference / rel), read_json(workdir / rel))
            rows.append(
                {
                    "file": str(rel),
                    "status": "differs" if diffs else "identical",
                    "differences": [{"key": k, "reference": a, "fresh": b} for k, a, b in diffs],
                }
            )
    return rows


IDENTICAL, WITHIN_NOISE, BEYOND_NOISE = "identical", "within noise", "differs beyond noise"
#: score fields judged against the record's own test-set interval
SCORES = ("mcc", "macro_f1", "accuracy")
#: fields that follow from the predictions or the training path: reported, judged through the scores
DERIVED = ("test_interval", "confusion_matrix", "test_predictions", "best_step", "best_epoch", "history")


def _field_noise(reference: Path) -> dict:
    """(stage, base tokenizer, field) -> 2 x sd over the reference's replicates of every numeric
    field of its pre-training and tokenizer records: how far a field may move within noise."""
    import numpy as np

    values: dict = {}
    for path in reference.glob("**/metrics.json"):
        record = read_json(path)
        if record.get("stage") not in ("pretrain", "tokenizer") or record.get("ablation"):
            continue
        for key, value in record.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values.setdefault((record["stage"], record["tokenizer"], key), []).append(value)
            elif isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
                for i, v in enumerate(value):
                    values.setdefault((record["stage"], record["tokenizer"], f"{key}.{i}"), []).append(v)
    return {k: 2 * float(np.std(v, ddof=1)) for k, v in values.items() if len(v) > 1}


def _sarscov2_noise(key: str, before, after, record: dict) -> tuple[float, float]:
    """(how far, how far within noise) for a field of the SARS-CoV-2 record: a share (k-NN
    accuracy, share of codes changed) within 2 binomial standard errors over its genomes, a
    silhouette within 0.01, the statement's wording (numbers aside) equal."""
    if isinstance(before, str) and isinstance(after, str):
        equal = re.sub(r"[\d.]+", "#", before) == re.sub(r"[\d.]+", "#", after)
        return (0.0 if equal else 1.0), 0.5
    if not all(isinstance(v, (int, float)) for v in (before, after)):
        return 1.0, 0.0
    if "silhouette" in key:
        return abs(after - before), 0.01
    n = max(1, int(record.get("n_genomes", 1)))
    p = min(max(float(before), 0.0), 1.0)
    return abs(after - before), 2 * max((p * (1 - p) / n) ** 0.5, 1 / n)


def judge_file(row: dict, reference_record: dict, noise: dict) -> tuple[str, list[str]]:
    """One differing file -> (verdict, why): every differing field set against its own noise.
    Scores move within their test-set interval's half width; pre-training and tokenizer numbers
    within 2 sd of the reference's replicates; predictions, confusion matrices and intervals
    follow from the scores; anything else (labels, settings, counts) must be equal."""
    stage, tokenizer = reference_record.get("stage"), reference_record.get("tokenizer")
    why, beyond = [], False
    for d in row["differences"]:
        key, before, after = d["key"], d["reference"], d["fresh"]
        top = key.split(".")[0]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (before, after))
        if top in DERIVED:
            continue
        if before is None and after is not None:
            why.append(f"{key}: a field the reference's version did not record")
            continue
        if stage == "sarscov2":
            moved, scale = _sarscov2_noise(key, before, after, reference_record)
            beyond |= moved > scale
            why.append(f"{key} moved {moved:.4g} (noise {scale:.4g})")
            continue
        if top in SCORES and numeric and top in (reference_record.get("test_interval") or {}):
            low, high = reference_record["test_interval"][top]
            scale = (high - low) / 2
            moved = abs(after - before)
            beyond |= moved > scale
            why.append(f"{key} moved {moved:.4f}, {moved / scale:.2f} x its test-set half width {scale:.4f}")
        elif numeric and (stage, tokenizer, key) in noise:
            scale, moved = noise[(stage, tokenizer, key)], abs(after - before)
            beyond |= moved > scale
            ratio = moved / scale if scale > 0 else float("inf")
            why.append(f"{key} moved {moved:.4g}, {ratio:.2f} x 2 sd over replicates ({scale:.4g})")
        else:
            beyond = True
            why.append(f"{key} must be equal: reference {before!r}, fresh {after!r}")
    return (BEYOND_NOISE if beyond else WITHIN_NOISE), why


def _summary_checks(workdir: Path, reference: Path) -> list[str]:
    """Summary-level failures: a fresh cell mean outside the reference cell's 95% interval, a
    verdict that changed, a pretext decision that changed. Empty when everything holds."""
    from vqdna.analysis import baselines, effects, pretext, tables
    from vqdna.workflow.records import collect_metrics

    def records(root: Path):
        return collect_metrics(
            sorted(
                p
                for p in root.glob("**/metrics.json")
                if not {"reference", "sarscov2"} & set(p.relative_to(root).parts)
            )
        )

    old, new = records(reference), records(workdir)
    problems = []
    keys = ["suite", "task", "tokenizer", "protocol", "coverage"]
    for stage in ("finetune", "linear_probe"):
        if not (old["stage"] == stage).any():
            continue
        a = tables.summary_table(old, stage).set_index(keys)
        b = tables.summary_table(new, stage).set_index(keys) if (new["stage"] == stage).any() else a.iloc[:0]
        for key, row in a.iterrows():
            if key not in b.index:
                problems.append(f"{stage} {'/'.join(map(str, key[:3]))}: no fresh cell")
                continue
            mean = b.loc[key, "mean"]
            if not row["ci_low"] <= mean <= row["ci_high"]:
                problems.append(
                    f"{stage} {'/'.join(map(str, key[:3]))}: fresh mean {mean:.1f} outside the reference's "
                    f"95% interval [{row['ci_low']:.1f}, {row['ci_high']:.1f}]"
                )
    verdicts = [
        effects.study_effects(df, reference=baselines.BASELINE_NAME)[0].set_index(
            ["stage", "protocol", "comparison"]
        )["verdict"]
        for df in (old, new)
    ]
    for key, verdict in verdicts[0].items():
        fresh = verdicts[1].get(key)
        # the decision, not its description ("no across-task test possible (A ahead on 1 of 2...)")
        if str(fresh).split(" (")[0] != str(verdict).split(" (")[0]:
            problems.append(f"verdict {' / '.join(key)}: reference {verdict!r}, fresh {fresh!r}")
    learned = [dict(zip(t["tokenizer"], t["learned"])) for t in map(pretext.pretext_table, (old, new))]
    for tokenizer, decision in learned[0].items():
        if decision.startswith("not shown"):  # the reference's records predate the baselines
            continue
        if learned[1].get(tokenizer) != decision:
            problems.append(
                f"pretext learned {tokenizer}: reference {decision}, fresh {learned[1].get(tokenizer)}"
            )
    return problems


def judge(rows: list[dict], workdir: str | Path, reference: str | Path) -> tuple[str, list[str]]:
    """The comparison's verdict: :data:`IDENTICAL` (every file equal, none missing),
    :data:`WITHIN_NOISE` (every differing field within its noise, :func:`judge_file`, and the
    summary checks hold: cell means inside the reference's intervals, the same verdicts and
    pretext decisions) or :data:`BEYOND_NOISE`. Each row gets its own ``verdict`` and ``why``;
    the second value lists the summary-level problems."""
    workdir, reference = Path(workdir), Path(reference)
    if not rows:
        return BEYOND_NOISE, ["no reference metrics found: nothing compared"]
    noise = _field_noise(reference)
    for row in rows:
        if row["status"] == "identical":
            row["verdict"], row["why"] = IDENTICAL, []
        elif row["status"] == "differs":
            row["verdict"], row["why"] = judge_file(row, read_json(reference / row["file"]), noise)
        elif row["status"] == "extra":
            row["verdict"], row["why"] = "not in the reference", []
        else:
            row["verdict"], row["why"] = (
                BEYOND_NOISE,
                ["missing file: the reference has it, the run does not"],
            )
    if all(r["verdict"] in (IDENTICAL, "not in the reference") for r in rows):
        return IDENTICAL, []
    if any(r["verdict"] == BEYOND_NOISE for r in rows):
        return BEYOND_NOISE, []
    problems = _summary_checks(workdir, reference)
    return (BEYOND_NOISE, problems) if problems else (WITHIN_NOISE, [])


def compare_markdown(rows: list[dict], reference: str | Path, verdict: str = "", problems=()) -> str:
    """The comparison as a Markdown page: the verdict, counts per status, then every difference
    with how far it moved against its noise."""
    counts = {s: sum(r["status"] == s for r in rows) for s in ("identical", "differs", "missing", "extra")}
    lines = [
        f"# Fresh run vs tracked reference `{reference}`",
        "",
        *([f"**Verdict: {verdict}.**", ""] if verdict else []),
        "Every metrics JSON, every field except timings. "
        + ", ".join(f"{n} {s}" for s, n in counts.items())
        + ".",
        "",
    ]
    if not rows:
        lines.append("No reference metrics found: nothing compared.")
    if problems:
        lines += ["Summary-level checks that failed:", "", *[f"- {p}" for p in problems], ""]
    for row in rows:
        if row["status"] == "identical":
            continue
        judged = f" ({row['verdict']})" if row.get("verdict") else ""
        lines.append(f"- `{row['file']}`: **{row['status']}**{judged}")
        for why in row.get("why", [])[:20]:
            lines.append(f"  - {why}")
        if not row.get("why"):
            for d in row["differences"][:20]:
                lines.append(f"  - `{d['key']}`: reference {d['reference']!r}, fresh {d['fresh']!r}")
    return "\n".join(lines) + "\n"
