"""Portable numerics (vqdna.core.numerics): forcing the kernels' instruction set to two levels
changes the trained weights in native mode, and does not in portable mode."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vqdna.core import numerics

# A tokenizer (VQ-VAE), an encoder pre-trained on its codes and a linear probe, on real yeast
# windows, small enough for seconds: each stage's weights (or predictions) hashed.
STAGES = """
import hashlib, json
import numpy as np, torch
from vqdna.train import stages
from vqdna.data.genomes import embedded_genomes, read_contigs
from vqdna.train.classify import embed_sequences, fit_logistic
from vqdna.train.loop import RunConfig
from vqdna.train.mlm import MLMTraining, pretrain_mlm
from vqdna.train.tokenizer import train_tokenizer

torch.set_num_threads(1)
sequence = "".join(read_contigs(embedded_genomes()[0]["fasta"]).values()).upper()
windows = [w for w in (sequence[i : i + 128] for i in range(0, 128 * 500, 128)) if set(w) <= set("ACGT")]
spec = {"type": "vq", "codebook_size": 32, "code_dim": 16, "stem_dim": 32, "dim": 32, "depth": 1,
        "steps": 30, "batch_size": 32, "lr": 2e-3}
def digest(arrays):
    return hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()

tokenizer, _ = train_tokenizer(spec, windows[:400], windows[400:], seed=0)
model = stages.build_masked_lm(tokenizer, {"layers": 1, "dim": 64, "heads": 2}, seed=0)
pretrain_mlm(model, tokenizer, windows[:400], MLMTraining(steps=20, batch_size=16, lr=2e-3, max_length=64,
             eval_every=20), val_sequences=windows[400:], seed=0, run=RunConfig(progress=False))
gc = np.array([int(w.count("G") + w.count("C") > 48) for w in windows])
embedded = embed_sequences(model.encoder, tokenizer, windows, max_length=64)
probe = fit_logistic(embedded[:300], gc[:300])
print(json.dumps({
    "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    "vqvae": digest(p.detach().numpy() for p in tokenizer.model.parameters()),
    "encoder": digest(p.detach().numpy() for p in model.parameters()),
    "probe": digest([probe[-1].coef_, probe.predict(embedded[300:])]),
    # numpy's SIMD loops, as in the tokenizer statistics (perplexity = exp of an entropy of logs)
    "numpy": digest([np.log(np.abs(embedded) + 1e-3), np.exp(-np.abs(embedded)), np.tanh(embedded)]),
}))
"""
#: what a machine with another instruction set would pick (this machine cannot go up, so down)
OTHER_MACHINE = {
    "ATEN_CPU_CAPABILITY": "default",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "NPY_DISABLE_CPU_FEATURES": "AVX F16C FMA3 AVX2 X86_V3 X86_V4 AVX512F AVX512_SKX AVX512_ICL AVX512_SPR",
}


def _avx2() -> bool:
    try:
        return " avx2 " in f" {Path('/proc/cpuinfo').read_text().replace(chr(10), ' ')} "
    except OSError:
        return False


def _run(mode: str, forced: dict) -> dict:
    env = {**os.environ, **forced}
    for key in numerics.PORTABLE_ENV:
        if key not in forced:
            env.pop(key, None)
    numerics.apply(mode, env)
    out = subprocess.run([sys.executable, "-c", STAGES], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not _avx2(), reason="portable mode pins AVX2, which this CPU lacks")
def test_two_isa_levels_differ_natively_and_agree_in_portable_mode():
    native = _run("native", {}), _run("native", OTHER_MACHINE)
    portable = _run("portable", {}), _run("portable", OTHER_MACHINE)
    assert native[1]["cpu_capability"] == "DEFAULT" and portable[1]["cpu_capability"] == "AVX2"
    assert native[0]["vqvae"] != native[1]["vqvae"] and native[0]["encoder"] != native[1]["encoder"]
    assert native[0]["numpy"] != native[1]["numpy"]
    assert portable[0] == portable[1]


def test_apply_sets_the_portable_variables_and_refuses_unknown_modes():
    env = {"ATEN_CPU_CAPABILITY": "avx512"}
    assert numerics.apply("native", env) == {} and env == {"ATEN_CPU_CAPABILITY": "avx512"}
    numerics.apply("portable", env)
    assert env["ATEN_CPU_CAPABILITY"] == "avx2" and env["MKL_CBWR"] == "AVX2"
    assert "X86_V4" in env["NPY_DISABLE_CPU_FEATURES"].split()
    with pytest.raises(ValueError, match="numerics must be one of"):
        numerics.apply("fast", env)


def test_probe_parameters_are_rounded_to_the_stated_bits():
    import numpy as np

    from vqdna.train import classify

    x = np.random.default_rng(0).standard_normal((200, 8))
    probe = classify.fit_logistic(x, (x[:, 0] > 0).astype(int))
    coef = probe[-1].coef_
    assert np.array_equal(coef, classify.round_significant(coef, classify.PROBE_BITS))
    assert classify.round_significant(np.array([1 + 2**-20]), 16)[0] == 1.0
