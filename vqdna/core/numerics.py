"""Portable numerics: the same bits from the CPU kernels whichever x86-64 vendor runs a job.

torch's CPU kernels pick their instruction set at process start: ATen's vectorised kernels
(``ATEN_CPU_CAPABILITY``), MKL's BLAS (``MKL_CBWR``) and oneDNN's convolutions
(``ONEDNN_MAX_CPU_ISA``) each take the widest the CPU offers, and so do numpy's own SIMD loops
(``NPY_DISABLE_CPU_FEATURES``), so an AVX-512 Xeon and an AVX2-only
EPYC sum in different orders and a 400-step VQ-VAE already differs in the 4th digit. Measured on
an AMD EPYC (docs/performance.md): forcing ATen to ``default`` or oneDNN to ``SSE41`` changes the
trained weights; MKL runs its AVX2 branch there either way.

``numerics: portable`` (the config default) pins all four to AVX2, which every machine of this
project's kind has, from the start of every job: the Snakefile puts :data:`PORTABLE_ENV` into
its own environment before any job starts, so every rule's shell, notebook runner and kernel
inherits it. ``native`` leaves the choice to the CPU (faster where AVX-512 exists; bits then
match only on the same CPU model). Deterministic algorithms and one thread per job are set
elsewhere (``vqdna.core.seed.seed_everything``, ``threads_per_job``).

Measured on an AMD EPYC with AVX-512 (Zen 5) against the reference made on an AVX2-only EPYC:
with the torch switches alone, 102 of 103 records were identical and one perplexity moved in its
last bit (numpy's AVX-512 ``log``); numpy's switch closes that. OpenBLAS (whose kernel this
machine kind may set through ``OPENBLAS_CORETYPE``, left alone on purpose) can still differ
across CPUs in the last bits: the one step whose output
feeds later stages, the logistic probe, is made robust instead (``vqdna.train.classify.fit_logistic``).

This module imports neither torch nor numpy: the Snakefile reads it at plan time.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

MODES = ("portable", "native")

#: what portable mode sets, overriding whatever the environment held
PORTABLE_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "DNNL_MAX_CPU_ISA": "AVX2",  # oneDNN's older name for the same switch
    "MKL_DYNAMIC": "FALSE",  # MKL may not lower its thread count on its own
    # numpy's own SIMD loops (log, exp, power, ...) dispatch at import too: AVX-512 ones differ
    # from the AVX2 ones in the last bit. Names of numpy 1.26 and 2.x; unknown ones are ignored.
    "NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX "
    "AVX512_CNL AVX512_ICL AVX512_SPR X86_V4",
}
#: variables that decide kernels; recorded in provenance whatever the mode
KERNEL_ENV = (
    *PORTABLE_ENV,
    "MKL_ENABLE_INSTRUCTIONS",
    "OMP_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
)


def apply(mode: str, environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Set ``mode``'s variables in ``environ`` (the process environment by default; children
    inherit it). -> the variables set (empty for native). Call before torch is imported."""
    if mode not in MODES:
        raise ValueError(f"numerics must be one of {MODES}, got {mode!r}")
    if mode == "native":
        return {}
    environ.update(PORTABLE_ENV)
    return dict(PORTABLE_ENV)


def describe(mode: str | None = None) -> dict:
    """The kernel choices in force in this process, for provenance: the mode, the kernel
    variables, torch's CPU capability and MKL version, and numpy's BLAS kernel (threadpoolctl)."""
    info: dict = {
        "mode": mode,
        "environment": {k: os.environ[k] for k in KERNEL_ENV if k in os.environ},
    }
    try:
        import torch

        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["torch_threads"] = torch.get_num_threads()
        info["deterministic_algorithms"] = torch.are_deterministic_algorithms_enabled()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: pool.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for pool in threadpool_info()
        ]
    except ImportError:  # pragma: no cover
        pass
    return info
