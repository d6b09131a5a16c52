"""The reader's page: what the summary notebook shows first. A verdict paragraph generated from
the claim table, the paper's Table 1 layout (tokenizers as rows, tasks as columns, ours with its
interval beside the paper's number, best per column in bold), short protocol codes with one
legend, and a collapsed appendix for the long-format tables."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

import pandas as pd

from vqdna.analysis.effects import NO_TEST
from vqdna.analysis.power import min_tasks
from vqdna.analysis.tables import markdown

#: row order of Table 1: the paper's ordering, then anything else, the k-mer-spectrum reference last
ORDER = ("hrq", "vq", "bpe", "kmer6", "kmer6_nonoverlap", "char")


def protocol_codes(labels: Sequence[str]) -> dict[str, str]:
    """Protocol label -> short code ("P1" for the most frequent label, then "P2", ...)."""
    counts = pd.Series(list(labels)).value_counts(sort=True)
    ordered = sorted(counts.index, key=lambda label: (-counts[label], label))
    return {label: f"P{i + 1}" for i, label in enumerate(ordered)}


def legend(codes: Mapping[str, str]) -> str:
    """One Markdown line per protocol code: what each deviates from the paper in."""
    return "\n".join(f"- **{code}**: {label}" for label, code in codes.items())


def _verdict_group(verdict: str) -> str:
    if verdict == "holds":
        return "holds"
    if verdict == "does not hold":
        return "does not hold"
    if verdict.startswith("not run in this study"):
        return "not run here"
    return "not decided"


def verdict_paragraph(claims: pd.DataFrame) -> str:
    """The answer first: the claim table's verdicts, grouped (holds / does not hold / not
    decided at this scale / not run here), one bullet per group; a claim judged per tokenizer
    names its tokenizers once, an undecided one also its reason."""
    groups: dict[str, dict[str, list[str]]] = {}
    for row in claims.itertuples():
        group = _verdict_group(row.verdict)
        claim = row.claim if group != "not decided" else f"{row.claim}: {row.verdict}"
        who = groups.setdefault(group, {}).setdefault(claim, [])
        if row.tokenizer != "all":
            who.append(str(row.tokenizer))
    lines = []
    for group in ("holds", "does not hold", "not decided", "not run here"):
        if group in groups:
            named = [f"{claim} ({', '.join(who)})" if who else claim for claim, who in groups[group].items()]
            lines.append(f"- **{group.capitalize()}:** " + "; ".join(named) + ".")
    return "\n".join(lines)


def effects_brief(effects: pd.DataFrame, codes: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, str]:
    """The across-task effects in what a reader needs under the headline figure -> (table, note).
    The table has the comparisons that have an across-task test: comparison (with its protocol
    code), tasks, mean difference [95% interval] over tasks, verdict. The note is one sentence
    for those with too few tasks for a test (their per-task intervals are the figure; their rows
    stay in ``effects.csv``), or empty."""
    rows, untested = [], []
    for row in effects.itertuples():
        if str(row.verdict).startswith(NO_TEST):
            untested.append(int(row.n_tasks))
            continue
        interval = (
            "–" if pd.isna(row.ci_low) else f"{row.mean_diff:+.2f} [{row.ci_low:.2f}, {row.ci_high:.2f}]"
        )
        rows.append(
            {
                "comparison": f"{row.comparison} ({(codes or {}).get(row.protocol, row.protocol)})",
                "tasks": int(row.n_tasks),
                "mean difference over tasks [95% CI]": interval,
                "verdict": row.verdict,
            }
        )
    note = ""
    if untested:
        counts = sorted(set(untested))
        note = (
            f"{NO_TEST.capitalize()} for {len(untested)} comparison{'s' if len(untested) > 1 else ''} "
            f"({' or '.join(map(str, counts))} task{'s' if counts != [1] else ''}; the exact Wilcoxon "
            f"signed-rank test needs at least {min_tasks()} to reach p < 0.05): the per-task "
            "intervals in the figure are the evidence, and every row is in `effects.csv`."
        )
    return pd.DataFrame(rows), note


def _ordered(tokenizers: Sequence[str]) -> list[str]:
    known = [t for t in ORDER if t in tokenizers]
    return known + sorted(t for t in tokenizers if t not in known)


def table1(summary: pd.DataFrame, codes: Mapping[str, str] | None = None) -> dict[str, pd.DataFrame]:
    """Protocol code -> the paper's Table 1 layout for that protocol's tasks: one row per
    tokenizer (the k-mer-spectrum reference last), one column per task, cells "mean [low, high]"
    (x100) and the paper's number in parentheses where it has one; the best tokenizer of each
    column (highest mean, the reference row excluded) in bold; last column: average rank."""
    codes = codes or protocol_codes(summary["protocol"])
    out = {}
    for protocol, rows in summary.groupby("protocol", sort=False):
        tasks = sorted(rows["task"].unique())
        learned = rows[~rows["is_reference"]]
        best = learned.loc[learned.groupby("task")["mean"].idxmax(), ["task", "tokenizer"]]
        best = set(zip(best["task"], best["tokenizer"]))
        names = _ordered(list(learned["tokenizer"].unique())) + sorted(
            rows.loc[rows["is_reference"], "tokenizer"].unique()
        )
        table = []
        for tokenizer in names:
            line = {"tokenizer": tokenizer}
            for task in tasks:
                cell = rows[(rows["tokenizer"] == tokenizer) & (rows["task"] == task)]
                line[task] = _cell(cell.iloc[0], (task, tokenizer) in best) if len(cell) else "–"
            ranks = learned.loc[learned["tokenizer"] == tokenizer, "avg_rank"]
            line["avg rank"] = f"{ranks.iloc[0]:.2f}" if len(ranks) and not pd.isna(ranks.iloc[0]) else "–"
            table.append(line)
        out[codes.get(protocol, protocol)] = pd.DataFrame(table)
    return dict(sorted(out.items(), key=lambda item: (len(item[0]), item[0])))  # P1, P2, ..., P10


def _cell(row, best: bool) -> str:
    text = f"{row['mean']:.1f}"
    if not (pd.isna(row.get("ci_low")) or pd.isna(row.get("ci_high"))):
        text += f" [{row['ci_low']:.1f}, {row['ci_high']:.1f}]"
    if best:
        text = f"**{text}**"
    paper = row.get("paper")
    if paper is not None and not (isinstance(paper, float) and math.isnan(paper)) and paper != "":
        text += f" (paper {float(paper):.1f})"
    return text


def appendix(tables: Mapping[str, pd.DataFrame]) -> str:
    """The long tables, each folded into a ``<details>`` block (open it to read): HTML, so that
    the rendered page keeps them collapsed."""
    blocks = []
    for title, table in tables.items():
        body = table.to_html(index=False, border=0, na_rep="–", escape=True)
        blocks.append(
            f"<details><summary>{html.escape(title)} ({len(table)} rows)</summary>\n{body}\n</details>"
        )
    return "\n".join(blocks)


def record_brief(record: Mapping, keys: Sequence[str]) -> str:
    """A job record's headline numbers as a two-column Markdown table (what a per-job page shows
    first, instead of a raw dump): ``keys`` in order, those the record lacks left out, numbers
    to 4 significant digits (lists and mappings item by item), None as –."""

    def value(v) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, (list, tuple)):  # per level (codebooks), per split, ...
            return ", ".join(map(value, v))
        if isinstance(v, Mapping):
            return ", ".join(f"{k} {value(x)}" for k, x in v.items())
        return str(v)

    shown = [key for key in keys if key in record]
    return markdown(
        pd.DataFrame(
            {"quantity": [k.replace("_", " ") for k in shown], "value": [value(record[k]) for k in shown]}
        )
    )
