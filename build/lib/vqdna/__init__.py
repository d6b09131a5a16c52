"""vqdna: learned genome tokenization (VQ-VAE, HRQ) benchmarked against k-mer, BPE and
single-nucleotide tokenizers. Import submodules directly (``from vqdna import tokenizers``);
this package init stays import-light so data-only jobs do not pay for torch."""

import sys

__version__ = "0.1.0"

# jsonschema (Snakefile `validate`, nbformat in the notebook runner) imports rfc3987_syntax when it
# is installed, and that compiles a Lark grammar at import: 1.2 s CPU in every workflow job, for
# IRI format checks no schema here uses. Marking it absent makes jsonschema skip those checks.
sys.modules.setdefault("rfc3987_syntax", None)
