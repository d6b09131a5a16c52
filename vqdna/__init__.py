"""vqdna: learned genome tokenization (VQ-VAE, HRQ) benchmarked against k-mer, BPE and
single-nucleotide tokenizers. Import submodules directly (``from vqdna import tokenizers``);
this package init stays import-light so data-only jobs do not pay for torch."""

__version__ = "0.1.0"
