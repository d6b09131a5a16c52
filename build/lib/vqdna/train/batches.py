"""Token batches for the encoder loops (:mod:`vqdna.train.mlm`, :mod:`vqdna.train.classify`):
tokenise a split once, up front, compactly; trim each batch's padding columns."""

from __future__ import annotations

import numpy as np
import torch


def tokenize_all(tokenizer, sequences, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenise once, up front: (input_ids int32, attention_mask bool) on the CPU, compact so that
    a large corpus fits in memory; :func:`trim` makes each batch long again."""
    batch = tokenizer.encode_batch(list(sequences), max_length=max_length, truncation=True)
    ids = torch.as_tensor(batch["input_ids"])
    ids = ids.int() if tokenizer.vocab_size <= torch.iinfo(torch.int32).max else ids.long()  # 4-level HRQ
    return ids, torch.as_tensor(batch["attention_mask"]).bool()


def trim(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the all-padding columns of a (right-padded) batch, since short batches run faster;
    -> LongTensors."""
    length = int(mask.sum(1).max())
    return ids[:, :length].long(), mask[:, :length].long()


def as_xy(split) -> tuple[list[str], np.ndarray]:
    """(sequences, labels) pair or a DataFrame with ``sequence,label`` -> (list[str], int array)."""
    if hasattr(split, "columns"):
        return split["sequence"].tolist(), split["label"].to_numpy(dtype=np.int64)
    sequences, labels = split
    return list(sequences), np.asarray(labels, dtype=np.int64)
