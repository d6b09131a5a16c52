"""The protocol vocabulary: how a run departs from the paper's protocol, and the labels that say so.

Every record carries its ``deviations`` (the categories below, sorted); tables group rows by the
:func:`protocol_label` built from them and never pool or rank rows whose labels differ. Data
preparation (vqdna.data), model training (vqdna.train) and the records (vqdna.workflow.records)
all speak this vocabulary, so it lives below them.
"""

from __future__ import annotations

from typing import Iterable

from vqdna.core.settings import CorpusConfig

#: label of rows without any deviation from the paper's protocol
FULL_PROTOCOL = "full protocol"
#: profile name of the paper's own settings (config/paper.yaml); any other profile is a deviation
PAPER_PROFILE = "paper"
SMALL_MODEL = "small model and short training"
SHORT_FINETUNE = "short fine-tuning"
#: the paper study pre-trained without the paper's multi-species corpus (corpus.min_paper_bp)
SMALL_CORPUS = "small pre-training corpus"
#: the paper's corpus: DNABERT-2's 2.75 Gbp human + 32.49 Gbp multi-species; less than this
#: much extra_fasta labels a paper-profile run (config corpus.min_paper_bp overrides)
MIN_PAPER_BP = CorpusConfig.min_paper_bp
TRUNCATED = "inputs truncated"
#: data-preparation notes (vqdna.data.tasks / vqdna.data.suites) -> the category that labels table rows
DATA_DEVIATIONS = {
    "train subsampled": "train subsampled",
    "reduced-train": "reduced-train",
    "sequences truncated": TRUNCATED,
}


def protocol_label(deviations: Iterable[str]) -> str:
    """Deviations -> one label: sorted and joined, or :data:`FULL_PROTOCOL`."""
    deviations = sorted(set(deviations))
    return "; ".join(deviations) if deviations else FULL_PROTOCOL


def deviation_tags(notes: list[str]) -> list[str]:
    """Detailed data notes ("train subsampled to 3000 of 4904 ...") -> their categories, so
    that every task subsampled the same way shares one protocol label."""
    return sorted(
        {next((tag for key, tag in DATA_DEVIATIONS.items() if key in note), note) for note in notes}
    )


def profile_deviations(profile: str) -> list[str]:
    """The deviation a profile implies: none for the paper's, :data:`SMALL_MODEL` for any other."""
    return [] if profile == PAPER_PROFILE else [SMALL_MODEL]
