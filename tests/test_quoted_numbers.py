"""Numbers in prose come from the tables: every number the README and docs/ quote from a tracked
reference is listed in docs/quoted_numbers.yaml with the CSV cell(s) it comes from. The test
formats the cells and finds the result in the quote, and the quote in the document, so editing
either the prose or the table without the other fails."""

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from vqdna.analysis import pages

REPO = Path(__file__).resolve().parents[1]
QUOTES = yaml.safe_load((REPO / "docs" / "quoted_numbers.yaml").read_text())


def _cell_values(quote: dict) -> list:
    table = pd.read_csv(REPO / quote["file"])
    rows = table
    for column, value in quote.get("where", {}).items():
        rows = rows[rows[column].astype(str) == str(value)]
    assert len(rows) == 1, f"{quote['file']} {quote.get('where')}: {len(rows)} rows match, need 1"
    return [rows.iloc[0][c] for c in quote["values"]]


def _normal(text: str) -> str:
    """Whitespace collapsed, the typographic minus read as "-"."""
    return " ".join(text.replace("\u2212", "-").split())


@pytest.mark.parametrize("quote", QUOTES, ids=[q["quote"][:60] for q in QUOTES])
def test_quoted_number_matches_its_table_and_its_document(quote):
    values = _cell_values(quote)
    if quote.get("parse"):
        values = [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", str(values[0]))]
    formatted = quote["format"].format(*values)
    assert formatted in _normal(quote["quote"]), (
        f"table gives {formatted!r}, the quote says {quote['quote']!r}"
    )
    name = quote.get("document", "README.md")
    assert _normal(quote["quote"]) in _normal((REPO / name).read_text()), f"{name} lost {quote['quote']!r}"


def test_the_at_a_glance_table_is_generated_from_the_reference():
    readme = (REPO / "README.md").read_text()
    assert pages.glance(REPO / "results" / "reference" / "cpu-default") in readme


def test_an_edited_quote_fails(tmp_path):
    quote = dict(QUOTES[0])
    quote["quote"] = quote["quote"].replace(quote["format"].format(*_cell_values(quote)), "99.9")
    with pytest.raises(AssertionError):
        test_quoted_number_matches_its_table_and_its_document(quote)


def test_the_index_of_tracked_references_is_up_to_date():
    """results/reference/index.md is generated (python -m vqdna.analysis.reference index > ...)."""
    root = REPO / "results" / "reference"
    assert (root / "index.md").read_text() == pages.reference_index(root)
    assert all(
        f"[{p.name}]({p.name}/index.md)" in (root / "index.md").read_text()
        for p in root.iterdir()
        if p.is_dir()
    )
