"""Generated Markdown pages about runs: the README's at-a-glance table (:func:`glance`), the
index of the tracked references (:func:`reference_index`, ``results/reference/index.md``) and a
run's own ``index.md`` linking its results and rendered notebooks (:func:`write_index`)."""

from __future__ import annotations

from pathlib import Path

from vqdna.analysis.provenance import read_json

#: how the glance table names each tokenizer, in its row order
NAMES = {
    "hrq": "HRQ",
    "vq": "VQ",
    "kmer6": "6-mer, overlapping",
    "char": "char",
    "kmer6_nonoverlap": "6-mer, non-overlapping",
    "bpe": "BPE",
}


def glance(reference: str | Path, task: str = "coding") -> str:
    """The README's at-a-glance table, generated from a reference's summary CSVs (so a number
    in it cannot drift from the tracked tables; tests/test_readme.py regenerates and compares):
    per tokenizer, whether its encoder learned the pretext (loss vs the best context-free and
    the neighbour baseline), and its linear-probe and fine-tuning cells on ``task``."""
    import pandas as pd

    summary = Path(reference) / "summary"
    pretext = pd.read_csv(summary / "pretext.csv").set_index("tokenizer")
    cells = {}
    for stage in ("linear_probe", "finetune"):
        table = pd.read_csv(summary / f"{stage}.csv")
        for row in table[table["task"] == task].itertuples():
            sd = "" if pd.isna(row.sd) else f" ± {row.sd:.1f}"
            cells[(stage, row.tokenizer)] = f"{row.mean:.1f}{sd} [{row.ci_low:.1f}, {row.ci_high:.1f}]"
    lines = [
        "| tokenizer | pretext learned (loss vs context-free / neighbour baseline, nats) | linear probe "
        "| fine-tuning |",
        "|---|---|---|---|",
    ]
    order = [t for t in NAMES if t in pretext.index]
    for tokenizer in order:
        p = pretext.loc[tokenizer]
        free = min(p["unigram_loss"], p["position_loss"])
        learned = "yes" if p["learned"] == "yes" else f"**{p['learned']}**"
        lines.append(
            f"| {NAMES[tokenizer]} | {learned}: {p['val_loss']:.3f} vs {free:.3f} / "
            f"{p['neighbour_loss']:.3f} "
            f"| {cells.get(('linear_probe', tokenizer), '–')} | {cells.get(('finetune', tokenizer), '–')} |"
        )
    reference_row = cells.get(("linear_probe", "kmer-spectrum LR"), "–")
    lines.append(f"| k-mer spectrum LR (reference) | – | {reference_row} | |")
    return "\n".join(lines) + "\n"


#: what each tracked profile is, one line (the index of all references says it)
PROFILES = {
    "cpu-default": "The default study (`config/config.yaml`): `coding` fine-tuned and probed, "
    "`species_1k` probed, 6 tokenizers x 3 replicates, SARS-CoV-2",
    "cpu-gue": "`config/gue.yaml`: the 13 complete GUE tasks x 6 tokenizers x 3 replicates, "
    "the verdict on the paper's ordering",
    "cpu-species": "`config/species.yaml`: species of origin from 1, 10 and 32 kbp (paper Table 6 analogue)",
    "cpu-ablations": "`config/ablations.yaml`: the paper's Tables 7-9 and the knobs beyond them",
}


def reference_index(root: str | Path) -> str:
    """``results/reference/index.md``: every tracked reference with what it is, its commit, CPU,
    numerics mode and run time, and links to its summary page, claims and figures (generated;
    a test holds the tracked file to it)."""
    root = Path(root)
    lines = [
        "# Tracked reference runs",
        "",
        "Each is one fresh-clone run of a study config, with its provenance.",
        "",
    ]
    for folder in sorted(p.parent for p in root.glob("*/provenance.json")):
        provenance = read_json(folder / "provenance.json")
        wall = provenance.get("run", {}).get("wall_time_s")
        minutes = f"{int(wall // 3600)} h {int(wall % 3600 // 60)} min" if wall else "time not recorded"
        mode = (provenance.get("numerics") or {}).get("mode") or "native"
        figures = sorted((folder / "summary" / "figures").glob("*.png"))
        lines += [
            f"## [{folder.name}]({folder.name}/index.md)",
            "",
            PROFILES.get(folder.name, "(profile not described)") + ".",
            f"Commit `{(provenance.get('commit') or '?')[:7]}`, "
            f"{provenance.get('machine', {}).get('cpu', '?')}, {mode} numerics, {minutes}.",
            "",
            f"- [summary page]({folder.name}/summary/summary.html) · "
            f"[claims]({folder.name}/summary/claims.md) · [effects]({folder.name}/summary/effects.md) · "
            f"[pretext]({folder.name}/summary/pretext.md) · [all results]({folder.name}/summary/results.md)",
            "- figures: "
            + " · ".join(f"[{f.stem}]({folder.name}/summary/figures/{f.name})" for f in figures),
            "",
        ]
    return "\n".join(lines)


def write_index(workdir, out_path, profile: str) -> None:
    """A Markdown page linking the gathered results and every rendered notebook of the run
    (per-job notebooks are local files: git tracks only the summary ones)."""
    workdir, out_path = Path(workdir), Path(out_path)
    lines = [
        f"# vqdna results — profile `{profile}`",
        "",
        "- [Results tables (Markdown)](summary/results.md) · [CSV](summary/results.csv)",
        "- [Claim verdicts](summary/claims.md) · [Pretext learned](summary/pretext.md) · "
        "[Variance: replicates vs fine-tuning](summary/variance.md)",
        "- [Summary notebook](summary/summary.html) · [Efficiency](summary/efficiency.html)",
        "- [Provenance of this run](provenance.json) (commit, config hash, libraries, machine)",
    ]
    if (workdir / "sarscov2" / "sarscov2.html").exists():
        lines.append("- [SARS-CoV-2 analysis (paper Fig. 5)](sarscov2/sarscov2.html)")
    lines += ["", "## Rendered job notebooks (present after a local run)", ""]
    for stage in ("tokenizers", "models", "finetune", "linear_probe"):
        pages = sorted(workdir.glob(f"{stage}/**/*.html"))
        if pages:
            lines.append(f"### {stage} ({len(pages)})\n")
            lines += [
                f"- [{page.parent.relative_to(workdir / stage)}]({page.relative_to(workdir)})"
                for page in pages
            ]
            lines.append("")
    out_path.write_text("\n".join(lines) + "\n")
