"""Training at scale on CPU: micro-batch accumulation, bf16 autocast, activation checkpointing,
interrupt-and-resume (bit-identical) and two-process DDP (gloo) against one process."""

from __future__ import annotations

import dataclasses
import os
import signal

import pytest
import torch
import torch.multiprocessing as mp

from vqdna.core.seed import seed_everything
from vqdna.model.encoder import EncoderConfig, MaskedLM, TransformerEncoder
from vqdna.model.vqvae import VQVAE, VQVAEConfig
from vqdna.tokenizers import build_tokenizer
from vqdna.train import scale
from vqdna.train.batches import tokenize_all
from vqdna.train.loop import RunConfig
from vqdna.train.mlm import MLMTraining, _mlm_labels, mask_tokens, pretrain_mlm
from vqdna.train.vqvae_trainer import VQTraining, fit_vqvae

ENCODER = EncoderConfig(layers=2, dim=32, heads=4)
VQ = dict(stem_dim=16, dim=16, depth=2, codebook_size=16, levels=2, dead_code_threshold=1.0)


def _windows(seq: str, n: int = 240, width: int = 48) -> tuple[list[str], list[str]]:
    windows = [w for w in (seq[i : i + width] for i in range(0, n * width, width)) if "N" not in w]
    return windows[:200], windows[200:]


def _mlm(tokenizer, dropout: float = 0.0) -> MaskedLM:
    seed_everything(0)
    cfg = EncoderConfig(layers=ENCODER.layers, dim=ENCODER.dim, heads=ENCODER.heads, dropout=dropout)
    return MaskedLM(TransformerEncoder.from_tokenizer(tokenizer, cfg), tokenizer.mlm_target_sizes)


def _split(kw: dict) -> tuple[dict, RunConfig]:
    """(the training settings of ``kw``, a RunConfig of its run fields; no progress bar)."""
    run_fields = {f.name for f in dataclasses.fields(RunConfig)}
    run = {k: kw.pop(k) for k in list(kw) if k in run_fields}
    return kw, RunConfig(**{"progress": False, **run})


def _pretrain(model, tokenizer, train, val, **kw):
    kw, run = _split(
        {"steps": 8, "batch_size": 16, "lr": 2e-3, "max_length": 50, "warmup_steps": 2, "eval_every": 3, **kw}
    )
    history = pretrain_mlm(model, tokenizer, train, MLMTraining(**kw), val_sequences=val, seed=0, run=run)
    return [{k: v for k, v in h.items() if k != "steps_per_s"} for h in history]


def _vqvae():
    seed_everything(0)
    return VQVAE(VQVAEConfig(**VQ))


def _fit(model, train, val, **kw):
    kw, run = _split({"steps": 8, "batch_size": 16, "lr": 3e-3, "warmup_steps": 2, "eval_every": 3, **kw})
    return fit_vqvae(model, train, val, VQTraining(**kw), 0, run)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _assert_close(h1: list[dict], h2: list[dict], rel: float = 1e-4) -> None:
    """Two histories equal up to float tolerance, entry by entry and key by key."""
    assert len(h1) == len(h2)
    for a, b in zip(h1, h2):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=rel, abs=1e-6), (a["step"], key)


def _interrupt_at(k: int):
    """on_step callback that sends this process SIGUSR1 (Slurm's warning signal) after step k."""

    def on_step(step):
        if step == k:
            os.kill(os.getpid(), signal.SIGUSR1)

    return on_step


def test_micro_batches_accumulate_to_the_full_batch_gradient(yeast_chromosome):
    train, val = _windows(yeast_chromosome)
    tokenizer = build_tokenizer("char")
    full = _mlm(tokenizer)
    micro = _mlm(tokenizer)
    h_full = _pretrain(full, tokenizer, train, val)
    h_micro = _pretrain(micro, tokenizer, train, val, micro_batch_size=5)  # 5+5+5+1 rows
    _assert_close(h_full, h_micro)
    for (name, p), q in zip(full.named_parameters(), micro.parameters()):
        if name.endswith("qkv.bias"):  # the key bias's gradient is 0 up to rounding, which Adam
            p, q = p[: ENCODER.dim], q[: ENCODER.dim]  # scales up to lr: compare query bias only
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)


def test_mlm_interrupt_and_resume_is_bit_identical(yeast_chromosome, tmp_path):
    train, val = _windows(yeast_chromosome)
    tokenizer = build_tokenizer("char")
    reference = _mlm(tokenizer, dropout=0.1)  # dropout: the global RNG state must be resumed too
    expected = _pretrain(reference, tokenizer, train, val, micro_batch_size=8)
    resume = tmp_path / "resume.pt"
    interrupted = _mlm(tokenizer, dropout=0.1)
    with pytest.raises(scale.Preempted, match="SIGUSR1 after step 4"):
        _pretrain(
            interrupted,
            tokenizer,
            train,
            val,
            micro_batch_size=8,
            resume_path=resume,
            on_step=_interrupt_at(4),
        )
    assert resume.exists()
    resumed = _mlm(tokenizer, dropout=0.1)
    assert _pretrain(resumed, tokenizer, train, val, micro_batch_size=8, resume_path=resume) == expected
    assert _same_weights(resumed, reference)
    assert not resume.exists()  # removed after a completed run
    with pytest.raises(ValueError, match="different run"):  # a checkpoint of other settings is refused
        scale.save_resume(resume, fingerprint={"steps": 1})
        _pretrain(_mlm(tokenizer), tokenizer, train, val, resume_path=resume)


def test_vqvae_periodic_checkpoint_and_resume_is_bit_identical(yeast_chromosome, tmp_path):
    train, val = _windows(yeast_chromosome)
    reference = _vqvae()
    expected = _fit(reference, train, val, micro_batch_size=8)  # deferred EMA + dead-code restart
    resume = tmp_path / "resume.pt"

    def crash(step):
        if step == 5:
            raise KeyboardInterrupt  # a hard stop: only the periodic checkpoint (step 4) is left

    with pytest.raises(KeyboardInterrupt):
        _fit(_vqvae(), train, val, micro_batch_size=8, resume_path=resume, checkpoint_every=2, on_step=crash)
    assert torch.load(resume, weights_only=False)["step"] == 4
    resumed = _vqvae()
    assert _fit(resumed, train, val, micro_batch_size=8, resume_path=resume) == expected
    assert _same_weights(resumed, reference)


def test_vqvae_micro_batches_match_full_batch_without_data_init(yeast_chromosome):
    """With the codebook initialised at construction (no k-means on the first micro-batch) and
    no dead-code restart (which draws from the last micro-batch), accumulation reproduces the
    full batch: EMA statistics are summed over micro-batches before the update."""
    train, val = _windows(yeast_chromosome)
    spec = {**VQ, "data_init": False, "dead_code_threshold": 0.0}
    seed_everything(0)
    full = VQVAE(VQVAEConfig(**spec))
    seed_everything(0)
    micro = VQVAE(VQVAEConfig(**spec))
    h_full, h_micro = _fit(full, train, val), _fit(micro, train, val, micro_batch_size=4)
    _assert_close(h_full, h_micro, rel=1e-3)
    for key, value in full.state_dict().items():
        torch.testing.assert_close(value, micro.state_dict()[key], rtol=1e-3, atol=1e-4, msg=key)


def test_activation_checkpointing_and_bf16(yeast_chromosome):
    train, val = _windows(yeast_chromosome)
    tokenizer = build_tokenizer("char")
    plain, recomputed = _mlm(tokenizer), _mlm(tokenizer)
    recomputed.encoder.activation_checkpointing = True
    expected = _pretrain(plain, tokenizer, train, val, steps=3)
    assert _pretrain(recomputed, tokenizer, train, val, steps=3) == expected
    assert _same_weights(plain, recomputed)
    model = _vqvae()
    model.activation_checkpointing = True
    history = _fit(model, train, val, steps=2, precision="bf16")  # CPU autocast; weights stay fp32
    assert all(p.dtype == torch.float32 for p in model.parameters()) and history[-1]["loss"] > 0
    assert scale.resolve_precision("auto", torch.device("cpu")) == "fp32"
    with pytest.raises(ValueError, match="precision"):
        scale.resolve_precision("fp16", torch.device("cpu"))


def _ddp_worker(rank: int, world: int, port: int, seq: str, out: str, micro: int | None) -> None:
    if world > 1:
        os.environ.update(
            WORLD_SIZE=str(world), RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
        )
    torch.set_num_threads(1)
    train, val = _windows(seq)
    tokenizer = build_tokenizer("char")
    mlm = _mlm(tokenizer)
    h_mlm = _pretrain(mlm, tokenizer, train, val, micro_batch_size=micro)
    vq = _vqvae()
    h_vq = _fit(vq, train, val, micro_batch_size=micro)
    if rank == 0:
        torch.save({"mlm": mlm.state_dict(), "h_mlm": h_mlm, "vq": vq.state_dict(), "h_vq": h_vq}, out)
    if world > 1:
        torch.distributed.destroy_process_group()


def test_two_ddp_processes_equal_one_process_at_the_same_effective_batch(yeast_chromosome, tmp_path):
    """2 gloo ranks x 1 micro-batch of 8 vs 1 process x 2 micro-batches of 8 (batch 16): the same
    micro-batches, gradients summed by all-reduce instead of accumulation."""
    seq = yeast_chromosome[:20_000]
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    _ddp_worker(0, 1, 0, seq, str(one), micro=8)
    mp.start_processes(_ddp_worker, args=(2, 29533, seq, str(two), None), nprocs=2, start_method="spawn")
    a, b = torch.load(one, weights_only=False), torch.load(two, weights_only=False)
    for key in ("h_mlm", "h_vq"):
        assert all(h.pop("world_size") == 2 for h in b[key]) and all("world_size" not in h for h in a[key])
        _assert_close(a[key], b[key])
    for model in ("mlm", "vq"):
        for key, value in a[model].items():
            torch.testing.assert_close(value, b[model][key], rtol=1e-3, atol=1e-4, msg=f"{model}.{key}")


def _old_usage_counts(tokenizer, windows):
    """The former method: counts over the joint vocabulary, then marginals per level."""
    import numpy as np

    counts = tokenizer.token_counts(windows)
    levels = tokenizer.ids_to_levels(torch.arange(5, tokenizer.vocab_size)).numpy()
    return {
        f"level {n + 1}": np.bincount(levels[:, n], weights=counts[5:], minlength=size).astype(int)
        for n, size in enumerate(tokenizer.level_sizes)
    }


def test_per_level_usage_counts_equal_the_joint_vocabulary_method(yeast_chromosome):
    from vqdna.train import stages

    train, val = _windows(yeast_chromosome)
    model = _vqvae()
    _fit(model, train, val, steps=3)
    tokenizer = build_tokenizer("hrq", model=model)
    new, old = stages.usage_counts(tokenizer, val), _old_usage_counts(tokenizer, val)
    assert new.keys() == old.keys() and all((new[k] == old[k]).all() for k in new)
    assert sum(new["level 1"]) == sum(len(tokenizer.encode(w, add_special_tokens=False)) for w in val)


def test_three_level_hrq_at_paper_sizes_never_builds_the_product_vocabulary(yeast_chromosome):
    """512/1024/2048 codes: 1.07e9 joint ids. Statistics, the encoder's embedding and the MLM
    targets work per level; the whole check allocates a few MB (tracemalloc sees numpy; the old
    method's joint bincount alone was 8.6 GB)."""
    import tracemalloc

    from vqdna.train import stages

    train, val = _windows(yeast_chromosome)
    seed_everything(0)
    model = VQVAE(VQVAEConfig(stem_dim=16, dim=16, depth=3, codebook_size=512, levels=3)).eval()
    tokenizer = build_tokenizer("hrq", model=model)
    assert tokenizer.level_sizes == [512, 1024, 2048] and tokenizer.vocab_size == 5 + 2**30
    tracemalloc.start()
    stats = stages.tokenizer_statistics(tokenizer, val)
    mlm = stages.build_masked_lm(tokenizer, {"layers": 1, "dim": 32, "heads": 4})
    ids, mask = tokenize_all(tokenizer, val[:4], 50)
    masked, positions = mask_tokens(ids.long(), 0.25, torch.Generator().manual_seed(0))
    _, loss = mlm(masked, mask.long(), _mlm_labels(tokenizer, ids, positions))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50e6, f"{peak / 1e6:.0f} MB traced"
    assert len(stats["code_usage"]) == 3 and 0 < stats["code_usage"][2] <= 1 and torch.isfinite(loss)
    assert [h.out_features for h in mlm.heads] == [512, 1024, 2048]
