"""The learned tokenizers of VQDNA: the codes a trained VQ-VAE (``vq``) or HRQ (``hrq``) assigns
to each down-sampled position of a sequence. Training the VQ-VAE is the trainer's
(:func:`vqdna.train.tokenizer.train_codebook`), not the tokenizer's."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

if TYPE_CHECKING:
    import torch

from vqdna.core.sequence import normalize, to_indices
from vqdna.tokenizers.base import CONFIG_FILE, N_SPECIAL, Tokenizer
from vqdna.tokenizers.safety import check_int

#: what a vq/hrq entry leaves out takes the study's value (config/config.yaml `vqvae`, held equal
#: by a test), so that ``{"type": "hrq"}`` alone trains what the study trains
STUDY_DEFAULTS = {
    "steps": 400,
    "batch_size": 32,
    "lr": 0.003,
    "warmup_steps": 40,
    "dead_code_threshold": 1,
}


def study_spec(spec: dict) -> dict:
    """A vq/hrq config entry completed with the study's training values and, for ``hrq``, the
    paper's two levels (an entry's own keys win)."""
    return {**STUDY_DEFAULTS, "levels": 2 if spec["type"] == "hrq" else 1, **spec}


class CodebookTokenizer(Tokenizer):
    """Learned tokenizer: the codes a trained VQ-VAE (``vq``, one level) or HRQ (``hrq``, several
    levels) assigns to each down-sampled position; ceil(len / stride) tokens per sequence.

    A position's id is ``5 + mixed-radix(m1..mL)`` over ``level_sizes`` (m1 most significant).
    The model runs in eval mode without gradients (``model.tokenize``); N is an all-zero one-hot
    input column. ``batch_size``: sequences per forward pass in ``encode_batch``.

    A sequence longer than ``window`` bp is tokenized window by window: each window of ``window``
    bp is run with :attr:`margin` tokens of context on both sides (the encoder's receptive field),
    so its ids equal a whole-sequence pass while memory stays that of one window. The default
    1,024 bp keeps a window's activations at a few MB (4,096 bp cost ~20 MB more peak RSS on the
    default model for a ~25% speed-up); ids are the same for any window.
    """

    config_types = ("vq", "hrq")

    def __init__(self, model, name: str = "vq", batch_size: int = 256, window: int = 1024):
        import torch

        batch_size = check_int("batch_size", batch_size, 1)
        window = check_int("window", window, 1)  # bp
        self.model, self.name, self.batch_size, self.window = model, name, batch_size, window
        self.window_tokens = max(1, window // int(model.config.stride))
        self.level_sizes = [int(size) for size in model.level_sizes]
        self._radix = torch.tensor(
            [math.prod(self.level_sizes[level + 1 :]) for level in range(len(self.level_sizes))]
        )
        self._sizes = torch.tensor(self.level_sizes)

    @property
    def vocab_size(self) -> int:
        return N_SPECIAL + math.prod(self.level_sizes)

    @classmethod
    def from_spec(cls, spec: dict, seed: int = 0) -> "CodebookTokenizer":
        """An untrained VQ-VAE (HRQ with ``levels`` > 1) of the config entry, its initial weights
        drawn from ``seed`` (they are part of the run). Keys the entry leaves out take the
        study's values (:func:`study_spec`)."""
        from vqdna.core.seed import seed_everything
        from vqdna.model.vqvae import VQVAE, VQVAEConfig

        spec = study_spec(spec)
        seed_everything(seed)
        return cls(VQVAE(VQVAEConfig.from_spec(spec)), name=spec["type"])

    def _decode(self, ids: np.ndarray) -> str:
        """Through the VQ-VAE's decoder: each token's code vectors -> the most likely bases
        (lossy: the reconstruction accuracy). ``[UNK]``/``[MASK]`` positions decode as N."""
        import torch

        if not len(ids):
            return ""
        stride = int(self.model.config.stride)
        known = torch.as_tensor(ids >= N_SPECIAL)
        levels = self.ids_to_levels(ids).clamp(min=0)
        with torch.no_grad():
            vectors = self.codes_to_vectors(levels) * known[:, None]
            bases = self.model.decode(vectors[None], len(ids) * stride)[0].argmax(-1)
        bases = bases.masked_fill(~known.repeat_interleave(stride), 4)
        return "".join("ACGTN"[b] for b in bases.tolist())

    @property
    def params(self) -> dict:
        return {
            "level_sizes": self.level_sizes,
            "stride": int(self.model.config.stride),
            "batch_size": self.batch_size,
        }

    def _encode(self, seq: str) -> np.ndarray:
        return self._encode_many([seq])[0]

    @property
    def margin(self) -> int:
        """Tokens of context a token's code depends on, on each side: ``depth`` blocks with
        depth-wise kernel ``block_kernel`` after the stem (kernel ``stem_kernel``, in bp) and the
        non-overlapping down-sampling by ``stride``; LayerNorm, MLP and quantizers are per token."""
        c = self.model.config
        return c.depth * (c.block_kernel // 2) + math.ceil((c.stem_kernel // 2) / c.stride)

    def _codes_to_ids(self, indices) -> np.ndarray:
        """Index rows (B, L) -> ids (B, ceil(L / stride))."""
        import torch

        codes = self.model.tokenize(torch.from_numpy(np.ascontiguousarray(indices, dtype=np.int64))).cpu()
        return (N_SPECIAL + (codes * self._radix).sum(-1)).numpy()

    def _encode_long(self, seq: str) -> np.ndarray:
        """Window by window: tokens ``t0..t1`` come from a pass over tokens ``t0-margin..t1+margin``
        (clipped at the sequence ends, which a whole pass sees too), so the ids are exact."""
        stride, window, margin = int(self.model.config.stride), self.window_tokens, self.margin
        length = len(seq)
        n_tokens = -(-length // stride)
        ids = np.empty(n_tokens, dtype=self.id_dtype)
        for t0 in range(0, n_tokens, window):
            t1 = min(t0 + window, n_tokens)
            a, b = max(0, t0 - margin), min(n_tokens, t1 + margin)
            piece = to_indices(seq[a * stride : min(length, b * stride)])
            ids[t0:t1] = self._codes_to_ids(piece[None])[0, t0 - a : t1 - a]
        return ids

    def _encode_many(self, seqs: list[str]) -> list[np.ndarray]:
        """One forward pass per distinct length (chunks of ``batch_size``); a sequence longer than
        the window goes window by window (:meth:`_encode_long`). Sequences are not padded
        to a common length: padding would change the codes near a sequence's end (the conv
        receptive field would see the padding), so a sequence's ids would depend on its batch."""
        rows: list = [None] * len(seqs)
        by_length: dict[int, list[int]] = {}
        for i, seq in enumerate(seqs):
            if len(seq) > self.window:
                rows[i] = self._encode_long(seq)
                continue
            by_length.setdefault(len(seq), []).append(i)
        for members in by_length.values():
            for start in range(0, len(members), self.batch_size):
                chunk = members[start : start + self.batch_size]
                ids = self._codes_to_ids(np.stack([to_indices(seqs[i]) for i in chunk])).astype(self.id_dtype)
                for i, row in zip(chunk, ids):
                    rows[i] = row
        return rows

    def level_counts(self, seqs: Iterable[str]) -> list[np.ndarray]:
        """How often each code of each level occurs when encoding ``seqs``: one array of length
        ``level_sizes[l]`` per level. Memory ~ the sum of the codebooks, never their product
        (``token_counts`` would allocate the joint vocabulary: 1e9 ids for a 512/1024/2048 HRQ)."""
        counts = [np.zeros(size, dtype=np.int64) for size in self.level_sizes]
        for row in self._encode_many([normalize(s) for s in seqs]):
            levels = self.ids_to_levels(row).numpy()
            for n, size in enumerate(self.level_sizes):
                counts[n] += np.bincount(levels[:, n], minlength=size)
        return counts

    def ids_to_levels(self, ids) -> torch.Tensor:
        """ids (...) -> per-level codes (..., L), -1 at special tokens."""
        import torch

        ids = torch.as_tensor(ids, dtype=torch.long)
        levels = ((ids - N_SPECIAL).clamp(min=0)[..., None] // self._radix) % self._sizes
        return levels.masked_fill((ids < N_SPECIAL)[..., None], -1)

    @property
    def mlm_target_sizes(self) -> list[int]:
        """One masked-modeling target per level (the paper's stage 2, losses summed)."""
        return list(self.level_sizes)

    def mlm_targets(self, ids) -> torch.Tensor:
        """ids (...) -> per-level codes (..., L), -1 at special tokens."""
        return self.ids_to_levels(ids)

    def codebooks(self) -> list[torch.Tensor]:
        """The model's frozen code vectors, one (K_l, code_dim) tensor per level."""
        return self.model.codebooks()

    def codes_to_vectors(self, levels: torch.Tensor) -> torch.Tensor:
        """Per-level codes (..., L) -> token embedding (..., code_dim), computed by the model."""
        return self.model.codes_to_vectors(levels)

    def _save(self, path: Path) -> None:
        self.model.save(path / "vqvae.pt")

    @classmethod
    def _load(cls, path: Path, name: str, params: dict) -> "CodebookTokenizer":
        from vqdna.model.vqvae import VQVAE

        file = path / "vqvae.pt"
        if not file.is_file():
            raise ValueError(f"{path}: {CONFIG_FILE} names a {name} tokenizer but vqvae.pt is absent")
        try:
            model = VQVAE.load(file)
        except Exception as error:  # torch / pickle / state-dict errors come in many types
            raise ValueError(
                f"{file}: not a VQ-VAE checkpoint of this project ({type(error).__name__}: {error})"
            ) from error
        tokenizer = cls(model, name=name, batch_size=params.get("batch_size", 256))
        saved = {k: params[k] for k in ("level_sizes", "stride") if k in params}
        found = {k: tokenizer.params[k] for k in saved}
        if saved != found:
            raise ValueError(f"{file}: the model has {found} but {path / CONFIG_FILE} says {saved}")
        if name == "vq" and len(tokenizer.level_sizes) != 1:  # HRQ may have one level (the levels ablation)
            raise ValueError(f"{file}: {len(tokenizer.level_sizes)} levels, not a {name} tokenizer")
        return tokenizer
