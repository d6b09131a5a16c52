"""Peak memory of reading and tokenizing one long single-line FASTA record (README, "Data and input
policy"): ``python -m vqdna.train.peak_memory {char,kmer6,kmer6_nonoverlap,bpe,vq,hrq} [--mbp 10]``.

Each run is its own process, so ``ru_maxrss`` (the peak resident set) covers only that tokenizer.
The FASTA is generated once (seeded, ACGT with 1% N, the whole record on one line) in /tmp. The
tokenizers have the default study sizes (config/config.yaml); VQ/HRQ models are untrained (their
memory does not depend on the weights), BPE is trained on 200 windows of the file. Printed: the
peak after imports and setup, and the peak after ``read_fasta`` + ``tokenizer.encode_array`` (``encode``'s
Python list would add 8 bytes per id, plus 28 per id above 256).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np

KINDS = ("char", "kmer6", "kmer6_nonoverlap", "bpe", "vq", "hrq")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_line_fasta(mbp: float, folder: str = "/tmp", seed: int = 0) -> Path:
    """``/tmp/vqdna_<mbp>mbp_one_line.fa``: one record, one line, written in 1 Mbp blocks."""
    path = Path(folder) / f"vqdna_{mbp:g}mbp_one_line.fa"
    if not path.exists():
        rng, letters = np.random.default_rng(seed), np.frombuffer(b"ACGTN", dtype=np.uint8)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            out.write(b">long one line record\n")
            left = int(mbp * 1_000_000)
            while left:
                size = min(left, 1_000_000)
                out.write(letters[rng.choice(5, size, p=[0.2475] * 4 + [0.01])].tobytes())
                left -= size
            out.write(b"\n")
        tmp.rename(path)
    return path


def build(kind: str, path: Path):
    """The default study tokenizer ``kind`` (config/config.yaml sizes)."""
    from vqdna.core.files import stream_fasta
    from vqdna.tokenizers import build_tokenizer

    if kind == "char":
        return build_tokenizer("char")
    if kind.startswith("kmer6"):
        return build_tokenizer("kmer", k=6, stride=6 if kind.endswith("nonoverlap") else 1)
    if kind == "bpe":
        _, chunk = next(stream_fasta(path, chunk_chars=200 * 128))
        return build_tokenizer("bpe", vocab_size=1024).train(
            [chunk[i : i + 128] for i in range(0, len(chunk), 128)]
        )
    import torch

    from vqdna.model.vqvae import VQVAE, VQVAEConfig

    torch.set_num_threads(1)
    config = VQVAEConfig(stem_dim=64, dim=64, depth=2, codebook_size=64, levels=1 if kind == "vq" else 2)
    return build_tokenizer(kind, model=VQVAE(config).eval())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--mbp", type=float, default=10.0)
    args = parser.parse_args(argv)
    from vqdna.core.files import read_fasta

    path = one_line_fasta(args.mbp)
    tokenizer = build(args.kind, path)
    setup = peak_mb()
    start = time.perf_counter()
    (sequence,) = read_fasta(path).values()
    ids = tokenizer.encode_array(sequence)
    seconds = time.perf_counter() - start
    print(
        f"{args.kind}\t{args.mbp:g} Mbp\t{len(ids)} tokens\tpeak after setup {setup:.0f} MB\t"
        f"peak after read+tokenize {peak_mb():.0f} MB\t{seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
