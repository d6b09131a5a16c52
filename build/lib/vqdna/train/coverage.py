"""Equal coverage in base pairs: which bases of each task sequence every tokenizer sees.

A task declares (``coverage_bp`` in benchmarks/*.yaml) and the config caps (``max_bp``) how many bp
of each sequence are read; a sequence that fits is read whole, a longer one through one fixed
window (centre or start) or, for the linear probe, through every window with the embeddings
pooled. Token caps follow per tokenizer from these bases (:func:`tokens_needed`, over all rows),
so no tokenizer cuts a sequence and rows that saw different bases are labelled apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vqdna.core.settings import ProbeConfig

if TYPE_CHECKING:
    from vqdna.tokenizers import Tokenizer


#: where a fixed coverage window sits in a longer sequence
WINDOWS = ("centre", "start")
#: how a sequence longer than the coverage is read: one fixed window, or (linear probe only)
#: every window of the sequence, their embeddings mean-pooled
POOLINGS = ("fixed", "sliding")
#: what every fine-tuning / linear-probe record stores about the bases each tokenizer saw
COVERAGE_FIELDS = (
    "coverage",
    "coverage_bp",
    "coverage_window",
    "coverage_pooling",
    "bp_seen",
    "n_sequences",
    "n_cut",
    "cut_fraction",
)


def window_of(sequence: str, max_bp: int | None, window: str = "centre") -> str:
    """The ``max_bp`` bp of ``sequence`` every tokenizer sees: all of it when it fits, else the
    centre (or start) window. The same bases for every tokenizer: equal coverage."""
    if window not in WINDOWS:
        raise ValueError(f"coverage window must be one of {WINDOWS}, got {window!r}")
    if max_bp is None or len(sequence) <= max_bp:
        return sequence
    start = (len(sequence) - max_bp) // 2 if window == "centre" else 0
    return sequence[start : start + max_bp]


def sliding_windows(sequence: str, max_bp: int | None) -> list[str]:
    """``sequence`` tiled by windows of ``max_bp`` bp that together cover every base; the last
    window ends at the sequence's end (it overlaps its neighbour when the length is not a multiple)."""
    if max_bp is None or len(sequence) <= max_bp:
        return [sequence]
    starts = list(range(0, len(sequence) - max_bp + 1, max_bp))
    if starts[-1] + max_bp < len(sequence):
        starts.append(len(sequence) - max_bp)
    return [sequence[s : s + max_bp] for s in starts]


def coverage(splits: dict, meta: dict, settings: ProbeConfig | dict | None = None) -> tuple[dict, dict]:
    """Equal coverage in bp: how many bp of each sequence every tokenizer sees.

    ``max_bp`` = the smaller of the task's declared ``coverage_bp`` (meta, benchmarks/*.yaml) and
    ``settings.max_bp`` (:class:`vqdna.core.settings.ProbeConfig` or its dict; None = no limit).
    Sequences that fit are seen whole; longer
    ones through their ``window`` (centre | start) of ``max_bp`` bp, or, with ``pooling:
    sliding``, through every window. Token caps then follow per tokenizer from these bases
    (:func:`tokens_needed`), so no tokenizer cuts a sequence. -> (splits with the windows
    applied; for sliding pooling each row holds the whole sequence, the record fields: the
    declared coverage, bp seen per sequence (over all splits), sequences cut and a label)."""
    settings = ProbeConfig.from_dict(settings)
    window, pooling = settings.window, settings.pooling
    if pooling not in POOLINGS:
        raise ValueError(f"coverage pooling must be one of {POOLINGS}, got {pooling!r}")
    limits = [v for v in (meta.get("coverage_bp"), settings.max_bp) if v is not None]
    max_bp = int(min(limits)) if limits else None
    lengths = np.concatenate([frame["sequence"].str.len().to_numpy() for frame in splits.values()])
    cut = int((lengths > max_bp).sum()) if max_bp is not None else 0
    if pooling == "sliding":
        seen, windowed = lengths, splits
    else:
        seen = np.minimum(lengths, max_bp) if max_bp is not None else lengths
        windowed = {
            name: frame.assign(sequence=[window_of(s, max_bp, window) for s in frame["sequence"]])
            for name, frame in splits.items()
        }
    if cut == 0:
        label = "whole sequences"
    elif pooling == "sliding":
        label = f"whole sequences, {max_bp} bp windows pooled"
    else:
        label = f"{window} {max_bp} bp"
    record = {
        "coverage_bp": max_bp,
        "coverage_window": window,
        "coverage_pooling": pooling,
        "coverage": label,
        "bp_seen": {"mean": float(seen.mean()), "min": int(seen.min()), "max": int(seen.max())},
        "n_sequences": int(len(lengths)),
        "n_cut": cut,
        "cut_fraction": cut / len(lengths),
    }
    return windowed, record


def tokens_needed(tokenizer: Tokenizer, splits: dict, max_bp: int | None = None, batch: int = 256) -> int:
    """Tokens (+[CLS]/[SEP]) of the longest input over ALL rows of every split, so that the
    cap cuts nothing; with ``max_bp`` the rows are read in sliding windows of that size."""
    sequences = [s for frame in splits.values() for s in frame["sequence"]]
    if max_bp is not None:
        sequences = [w for s in sequences for w in sliding_windows(s, max_bp)]
    longest = 0
    for start in range(0, len(sequences), batch):
        mask = tokenizer.encode_batch(sequences[start : start + batch], truncation=False)["attention_mask"]
        longest = max(longest, int(mask.sum(1).max()))
    return longest
