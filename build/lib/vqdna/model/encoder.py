"""BERT-style Transformer encoder over any tokenizer's ids, its masked-modeling and classification
heads, and LoRA adapters.

Pre-LN blocks (LayerNorm -> attention / MLP -> residual), GELU, sinusoidal positions computed on
the fly (valid for any length), attention through ``F.scaled_dot_product_attention``. The paper's
backbone is BERT-base (12 layers, width 768, 12 heads, MLP ratio 4, ~86M parameters);
``EncoderConfig``'s defaults are a small CPU-sized model instead.

Input embedding:
- char / k-mer / BPE: a learned ``nn.Embedding(vocab_size, dim)``;
- codebook tokenizers (VQ / HRQ): the frozen code vectors of the tokenizer (buffers, so a
  checkpoint is self-contained); a token's vector is the mean of its levels' code vectors (the
  paper's HRQ token embedding), mapped by a learned Linear(code_dim -> dim) and a LayerNorm; the
  5 special tokens get learned embeddings. The codebook never trains here, as in the paper's
  stage 2. By default each level's codebook is first standardised (centred, scaled to unit mean
  norm): trained codebooks share a large common offset (HRQ level 1 of the default run: mean
  norm 6.3, mean distance between codes 1.6), and without the standardisation HRQ fine-tuning
  collapsed to one class (README, "Choices where the paper is silent").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

N_SPECIAL = 5  # [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4; regular tokens start at 5
PAD_ID = 0


@dataclass
class EncoderConfig:
    """Encoder shape. Defaults are CPU-sized; the paper's BERT-base is
    ``EncoderConfig(layers=12, dim=768, heads=12)``."""

    layers: int = 2
    dim: int = 128
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0  # > 0 forces a ~2x slower attention kernel on CPU
    norm_eps: float = 1e-5
    standardize_codes: bool = True  # VQ/HRQ: centre + scale each frozen codebook before projecting


def sinusoidal_positions(length: int, dim: int, device=None) -> torch.Tensor:
    """(length, dim) sine/cosine position table of Vaswani et al.; works for any length."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


class SelfAttention(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        if cfg.dim % cfg.heads:
            raise ValueError(f"dim {cfg.dim} is not divisible by heads {cfg.heads}")
        self.heads, self.dropout = cfg.heads, cfg.dropout
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.proj = nn.Linear(cfg.dim, cfg.dim)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        hidden = int(cfg.mlp_ratio * cfg.dim)
        self.fc1, self.fc2 = nn.Linear(cfg.dim, hidden), nn.Linear(hidden, cfg.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-LN Transformer block."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps), nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.attn, self.mlp = SelfAttention(cfg), MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), attn_mask))
        return x + self.drop(self.mlp(self.ln2(x)))


class CodebookEmbedding(nn.Module):
    """Token id -> mean of its levels' frozen code vectors -> learned Linear + LayerNorm; learned
    special tokens.

    ``codebooks``: one (K_l, code_dim) tensor per level; ids are ``5 + mixed-radix(m1..mL)`` with
    m1 the most significant digit (checked against the tokenizer in ``from_tokenizer``).
    ``standardize``: centre each level's codebook and scale it to unit mean norm (a fixed,
    invertible map of the frozen codes, so no information is lost) before the projection.
    """

    def __init__(self, codebooks: list[torch.Tensor], dim: int, standardize: bool = True, eps: float = 1e-5):
        super().__init__()
        self.level_sizes = [int(c.shape[0]) for c in codebooks]
        self.standardize = standardize
        for level, codes in enumerate(codebooks):
            self.register_buffer(f"codebook{level}", codes.detach().float().clone())
        self.proj = nn.Linear(int(codebooks[0].shape[1]), dim)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.special = nn.Embedding(N_SPECIAL, dim)

    def levels(self, ids: torch.Tensor) -> torch.Tensor:
        """ids -> (..., L) per-level code indices (-1 at special tokens)."""
        rest = (ids - N_SPECIAL).clamp(min=0)
        digits = []
        for size in reversed(self.level_sizes):
            digits.append(rest % size)
            rest = rest // size
        levels = torch.stack(digits[::-1], dim=-1)
        return levels.masked_fill((ids < N_SPECIAL)[..., None], -1)

    def codebook(self, level: int) -> torch.Tensor:
        """Level ``level``'s code vectors as the encoder reads them (standardised if enabled)."""
        codes = getattr(self, f"codebook{level}")
        if not self.standardize:
            return codes
        centred = codes - codes.mean(0)
        return centred / centred.norm(dim=1).mean().clamp(min=1e-8)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # proj(mean of codes) = mean of projected codes + bias: project each (small) codebook once,
        # then gather, instead of projecting every position
        levels = self.levels(ids).clamp(min=0)
        n = len(self.level_sizes)
        tables = [self.codebook(level) @ self.proj.weight.T for level in range(n)]
        regular = self.norm(
            sum(table[levels[..., level]] for level, table in enumerate(tables)) / n + self.proj.bias
        )
        special = self.special(ids.clamp(max=N_SPECIAL - 1))
        return torch.where((ids < N_SPECIAL)[..., None], special, regular)


class TransformerEncoder(nn.Module):
    """ids (B, T) + attention_mask (B, T) -> hidden states (B, T, dim), final LayerNorm applied."""

    def __init__(
        self, cfg: EncoderConfig, vocab_size: int | None = None, codebooks: list[torch.Tensor] | None = None
    ):
        super().__init__()
        if (vocab_size is None) == (codebooks is None):
            raise ValueError("give exactly one of vocab_size (learned embedding) or codebooks (frozen)")
        self.cfg = cfg
        self.embed = (
            nn.Embedding(vocab_size, cfg.dim)
            if codebooks is None
            else CodebookEmbedding(codebooks, cfg.dim, standardize=cfg.standardize_codes, eps=cfg.norm_eps)
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.activation_checkpointing = False  # True: recompute each block's activations in backward

    @classmethod
    def from_tokenizer(cls, tokenizer, config: EncoderConfig | None = None) -> "TransformerEncoder":
        """Learned embedding for char/k-mer/BPE; frozen code vectors for tokenizers with ``codebooks()``."""
        config = config or EncoderConfig()
        if not hasattr(tokenizer, "codebooks"):
            return cls(config, vocab_size=tokenizer.vocab_size)
        encoder = cls(config, codebooks=[torch.as_tensor(c) for c in tokenizer.codebooks()])
        probe = torch.arange(0, tokenizer.vocab_size, max(1, tokenizer.vocab_size // 4096) | 1)
        if not torch.equal(encoder.embed.levels(probe), torch.as_tensor(tokenizer.ids_to_levels(probe))):
            raise ValueError("tokenizer's id -> levels mapping differs from CodebookEmbedding.levels")
        return encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(input_ids) + sinusoidal_positions(input_ids.shape[1], self.cfg.dim, input_ids.device)
        x = self.drop(x)
        attn_mask = None  # None (no padding) keeps the fastest attention kernel
        if attention_mask is not None and not bool(attention_mask.all()):
            attn_mask = attention_mask.bool()[:, None, None, :]
        recompute = self.activation_checkpointing and self.training and torch.is_grad_enabled()
        for block in self.blocks:
            x = checkpoint(block, x, attn_mask, use_reentrant=False) if recompute else block(x, attn_mask)
        return self.ln_f(x)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of hidden states over non-pad positions."""
    weights = attention_mask.to(hidden.dtype)[..., None]
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class MaskedLM(nn.Module):
    """Encoder + one linear head per masked-modeling target (HRQ: one per level, losses summed)."""

    def __init__(self, encoder: TransformerEncoder, target_sizes: list[int]):
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleList(nn.Linear(encoder.cfg.dim, size) for size in target_sizes)

    def forward(self, input_ids, attention_mask=None, labels=None):
        """labels (B, T, n_targets), -100 where not predicted. Returns (logits list over the
        labelled positions only, summed cross-entropy or None). Without labels: logits at every
        position, each (B, T, size)."""
        hidden = self.encoder(input_ids, attention_mask)
        if labels is None:
            return [head(hidden) for head in self.heads], None
        selected = labels[..., 0] != -100
        hidden, labels = hidden[selected], labels[selected]
        logits = [head(hidden) for head in self.heads]
        loss = sum(F.cross_entropy(lg, labels[:, i]) for i, lg in enumerate(logits))
        return logits, loss


class SequenceClassifier(nn.Module):
    """Encoder + pooling ("mean" over non-pad tokens, or the "cls" token) + head: "mlp" (hidden
    layer, GELU, dropout) or "linear" (one Linear, what a linear probe fits; LP-FT starts from it)."""

    def __init__(
        self,
        encoder: TransformerEncoder,
        num_classes: int,
        pooling: str = "mean",
        head_dropout: float = 0.1,
        head: str = "mlp",
    ):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        if head not in ("mlp", "linear"):
            raise ValueError(f"head must be 'mlp' or 'linear', got {head!r}")
        dim = encoder.cfg.dim
        self.encoder, self.pooling, self.num_classes = encoder, pooling, num_classes
        self.head = (
            nn.Linear(dim, num_classes)
            if head == "linear"
            else nn.Sequential(
                nn.Linear(dim, dim), nn.GELU(), nn.Dropout(head_dropout), nn.Linear(dim, num_classes)
            )
        )

    def forward(self, input_ids, attention_mask=None):
        """-> logits (B, num_classes)."""
        if attention_mask is None:
            attention_mask = (input_ids != PAD_ID).long()
        hidden = self.encoder(input_ids, attention_mask)
        pooled = hidden[:, 0] if self.pooling == "cls" else mean_pool(hidden, attention_mask)
        return self.head(pooled)


class LoRALinear(nn.Module):
    """Frozen ``base`` Linear plus a trainable low-rank update (alpha/rank) * B(A(dropout(x))).
    B starts at zero, so wrapping does not change the model's output."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float):
        super().__init__()
        self.base, self.scale = base, alpha / rank
        for p in base.parameters():
            p.requires_grad_(False)
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * (self.drop(x) @ self.lora_a.T @ self.lora_b.T)


def apply_lora(
    model: nn.Module,
    rank: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.05,
    targets: tuple[str, ...] = ("qkv", "proj", "fc1", "fc2"),
) -> nn.Module:
    """Freeze ``model.encoder`` and wrap its attention/MLP Linears (names in ``targets``) with LoRA,
    in place. Everything outside the encoder (the task head) stays trainable. Returns ``model``."""
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    for block in model.encoder.blocks:
        for parent in (block.attn, block.mlp):
            for name in targets:
                if isinstance(getattr(parent, name, None), nn.Linear):
                    setattr(parent, name, LoRALinear(getattr(parent, name), rank, alpha, dropout))
    return model
