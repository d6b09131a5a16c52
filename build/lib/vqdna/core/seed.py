"""Determinism: one seed for python, numpy and torch, and torch's deterministic kernels.

The only torch import of ``core``, and a lazy one: the plan (which imports ``core`` without
torch) never calls it."""

from __future__ import annotations

import os
import random

import numpy as np


def seed_everything(seed: int):
    """Seed python, numpy and torch; return a torch.Generator for explicit sampling.

    Also asks torch for deterministic kernels so that one seed gives the same metrics on CPU.
    """
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return torch.Generator().manual_seed(seed)
