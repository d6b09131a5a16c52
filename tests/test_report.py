"""The reader's page: verdicts first, the paper's Table 1 layout, short protocol codes, a
collapsed appendix, and rendered notebooks without code cells."""

import pandas as pd

from vqdna.analysis import report


def test_protocol_codes_number_labels_by_frequency():
    codes = report.protocol_codes(["b; c", "a", "b; c", "b; c", "a", "z"])
    assert codes == {"b; c": "P1", "a": "P2", "z": "P3"}
    assert report.legend(codes).splitlines()[0] == "- **P1**: b; c"


def test_verdict_paragraph_groups_claims_and_names_tokenizers_once():
    claims = pd.DataFrame(
        [
            ("pretext learned", "bpe", "holds"),
            ("pretext learned", "char", "holds"),
            ("pretext learned", "vq", "does not hold"),
            ("ordering", "all", "inconclusive (no across-task test possible with 1 task)"),
            ("peak", "hrq", "cannot be decided at this scale (detectable: 3.10 points)"),
            ("the ablation claims", "all", "not run in this study: config/ablations.yaml decides them"),
        ],
        columns=["claim", "tokenizer", "verdict"],
    )
    lines = report.verdict_paragraph(claims).splitlines()
    assert lines[0] == "- **Holds:** pretext learned (bpe, char)."
    assert lines[1] == "- **Does not hold:** pretext learned (vq)."
    assert lines[2].startswith("- **Not decided:** ordering: inconclusive (no across-task test")
    assert "peak: cannot be decided at this scale (detectable: 3.10 points) (hrq)" in lines[2]
    assert lines[3] == "- **Not run here:** the ablation claims."


def test_effects_brief_folds_untestable_comparisons_into_one_sentence():
    effects = pd.DataFrame(
        [
            ("hrq - vq", "small", 13, 0.5, -1.0, 2.0, "inconclusive at this power (detectable: 1.6 points)"),
            (
                "vq - bpe",
                "small",
                2,
                3.0,
                -40.0,
                46.0,
                "no across-task test possible with 2 tasks (vq ahead on 0 of 2)",
            ),
            (
                "hrq > vq > bpe",
                "small",
                2,
                float("nan"),
                float("nan"),
                float("nan"),
                "no across-task test possible with 2 tasks",
            ),
        ],
        columns=["comparison", "protocol", "n_tasks", "mean_diff", "ci_low", "ci_high", "verdict"],
    )
    table, note = report.effects_brief(effects, {"small": "P1"})
    assert table.to_dict("records") == [
        {
            "comparison": "hrq - vq (P1)",
            "tasks": 13,
            "mean difference over tasks [95% CI]": "+0.50 [-1.00, 2.00]",
            "verdict": "inconclusive at this power (detectable: 1.6 points)",
        }
    ]
    assert note.startswith("No across-task test possible for 2 comparisons (2 tasks; the exact Wilcoxon")
    assert "at least 6" in note
    table, note = report.effects_brief(effects.iloc[:1])
    assert len(table) == 1 and note == ""


def summary_rows():
    rows = []
    for task, scores in (
        ("coding", {"hrq": 30.0, "vq": 31.0, "kmer-spectrum LR": 40.0}),
        ("tata", {"hrq": 50.0, "vq": 20.0}),
    ):
        for tokenizer, mean in scores.items():
            rows.append(
                {
                    "task": task,
                    "tokenizer": tokenizer,
                    "protocol": "small model",
                    "mean": mean,
                    "ci_low": mean - 5,
                    "ci_high": mean + 5,
                    "paper": 79.2 if (task, tokenizer) == ("tata", "hrq") else float("nan"),
                    "is_reference": tokenizer == "kmer-spectrum LR",
                    "avg_rank": {"hrq": 1.5, "vq": 1.5}.get(tokenizer, float("nan")),
                }
            )
    return pd.DataFrame(rows)


def test_table1_has_tokenizers_as_rows_tasks_as_columns_and_marks_the_best():
    ((code, table),) = report.table1(summary_rows()).items()
    assert code == "P1"
    assert list(table["tokenizer"]) == ["hrq", "vq", "kmer-spectrum LR"]  # the reference row last
    assert list(table.columns) == ["tokenizer", "coding", "tata", "avg rank"]
    cells = table.set_index("tokenizer")
    assert cells.loc["vq", "coding"] == "**31.0 [26.0, 36.0]**"  # best learned tokenizer, not the reference
    assert cells.loc["kmer-spectrum LR", "coding"] == "40.0 [35.0, 45.0]"
    assert cells.loc["hrq", "tata"] == "**50.0 [45.0, 55.0]** (paper 79.2)"
    assert cells.loc["kmer-spectrum LR", "tata"] == "–" and cells.loc["hrq", "avg rank"] == "1.50"


def test_table1_lists_protocol_codes_in_order_whatever_the_row_order():
    rows = summary_rows()
    subsampled = rows.assign(protocol="small model; train subsampled", task=rows["task"] + "_sub")
    both = pd.concat([subsampled.iloc[:2], rows, subsampled.iloc[2:]], ignore_index=True)
    codes = {"small model": "P1", "small model; train subsampled": "P2"}
    assert list(report.table1(both, codes)) == ["P1", "P2"]
    codes = {f"label {i}": f"P{i}" for i in range(1, 12)}
    many = pd.concat([rows.assign(protocol=f"label {i}") for i in (11, 2, 1)], ignore_index=True)
    assert list(report.table1(many, codes)) == ["P1", "P2", "P11"]


def test_appendix_tables_are_collapsed():
    page = report.appendix({"long <table>": pd.DataFrame({"a": [1, 2]})})
    assert page.startswith("<details><summary>long &lt;table&gt; (2 rows)</summary>")
    assert page.endswith("</details>") and "<table" in page


def test_rendered_notebook_hides_code_and_says_where_the_source_is(tmp_path):
    from vqdna.workflow.notebook import run_notebook

    source = tmp_path / "page.py"
    cells = [
        "# %% [markdown]\n# # Title",
        '# %% tags=["parameters"]\nx = 1',
        '# %%\nprint("visible output", x + 1)',
    ]
    source.write_text("\n\n".join(cells) + "\n")
    run_notebook(source, tmp_path / "out" / "page.ipynb", {"x": 41})
    html = (tmp_path / "out" / "page.html").read_text()
    assert "visible output 42" in html
    assert 'class="jp-CodeMirrorEditor' not in html and "print(" not in html
    assert "the executed notebook is <code>page.ipynb</code> beside it" in html


def test_record_brief_is_a_small_table_of_the_named_numbers():
    record = {
        "stage": "tokenizer",
        "recon_accuracy": 0.999871,
        "bp_per_token": 1.0,
        "perplexity": None,
        "n": 8282,
    }
    assert report.record_brief(record, ["recon_accuracy", "bp_per_token", "perplexity", "n", "absent"]) == (
        "| quantity | value |\n|---|---|\n| recon accuracy | 0.9999 |\n| bp per token | 1 |\n"
        "| perplexity | – |\n| n | 8282 |\n"
    )
    assert report.record_brief({"bp_seen": {"mean": 125.0}, "x": None}, ["bp_seen", "x"]).endswith(
        "| bp seen | mean 125 |\n| x | – |\n"
    )
