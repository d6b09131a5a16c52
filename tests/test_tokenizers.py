"""Tokenizers on real sequence (S. cerevisiae chromosome I, GUE rows): the shared input policy,
k-mer counts, padding / truncation, deterministic BPE training and save/load round trips."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from vqdna.core.sequence import to_indices
from vqdna.model.vqvae import VQVAE, VQVAEConfig
from vqdna.tokenizers import (
    CLS_ID,
    PAD_ID,
    SEP_ID,
    UNK_ID,
    BPETokenizer,
    CodebookTokenizer,
    build_tokenizer,
    load_tokenizer,
)

BPE_VOCAB = 512
SIMPLE = [
    ("char", {}),
    ("kmer", {"k": 6, "stride": 1}),
    ("kmer", {"k": 6, "stride": 6}),
    ("kmer", {"k": 3, "stride": 2}),
]
CODEBOOK = [("vq", {"levels": 1}), ("hrq", {"levels": 2, "stride": 2})]


@pytest.fixture(scope="module")
def bpe(genome_windows):
    return build_tokenizer("bpe", vocab_size=BPE_VOCAB).train(genome_windows[0])


def untrained_vqvae(**config) -> VQVAE:
    """A small VQ-VAE with random weights: enough for shapes and round trips (quality is
    vqvae's tests' business)."""
    torch.manual_seed(0)
    return VQVAE(VQVAEConfig(**{"dim": 32, "stem_dim": 32, "depth": 2, "codebook_size": 16, **config})).eval()


@pytest.fixture(scope="module", params=[*SIMPLE, ("bpe", {}), *CODEBOOK], ids=lambda p: f"{p[0]}{p[1] or ''}")
def tokenizer(request, bpe):
    name, params = request.param
    if name == "bpe":
        return bpe
    if name in ("vq", "hrq"):
        return build_tokenizer(name, model=untrained_vqvae(**params))
    return build_tokenizer(name, **params)


def naive_kmer_ids(seq: str, k: int, stride: int) -> list[int]:
    """Reference k-mer ids, one position at a time."""
    ids, start = [], 0
    while start + k <= len(seq):
        kmer = seq[start : start + k]
        ids.append(UNK_ID if "N" in kmer else 5 + int(kmer.translate(str.maketrans("ACGT", "0123")), 4))
        start += stride
    return ids + [5 + 4**k + "ACGTN".index(b) for b in seq[start - stride + k if ids else 0 :]]


def test_kmer_counts_on_acgtacgt():
    overlapping = build_tokenizer("kmer", k=3, stride=1)
    assert overlapping.encode("ACGTACGT", add_special_tokens=False) == [11, 32, 49, 54, 11, 32]
    nonoverlap = build_tokenizer("kmer", k=3, stride=3)
    single = {b: 5 + 64 + i for i, b in enumerate("ACGTN")}
    # ACG TAC + G T
    assert nonoverlap.encode("ACGTACGT", add_special_tokens=False) == [11, 54, single["G"], single["T"]]
    assert nonoverlap.vocab_size == 5 + 4**3 + 5
    # shorter than k: single bases
    assert nonoverlap.encode("AN", add_special_tokens=False) == [single["A"], single["N"]]


@pytest.mark.parametrize("k,stride", [(1, 1), (3, 1), (3, 2), (6, 1), (6, 6), (5, 4)])
def test_kmer_matches_reference_on_genome(yeast_chromosome, k, stride):
    seq = yeast_chromosome[:5003] + "NN" + yeast_chromosome[5003:6001]  # N-containing k-mers too
    tokenizer = build_tokenizer("kmer", k=k, stride=stride)
    ids = tokenizer.encode(seq, add_special_tokens=False)
    assert ids == naive_kmer_ids(seq, k, stride)
    pieces = [
        seq[start : start + n] for start, n in zip(range(4990, 5020, 2), range(1, 16))
    ]  # some < k, some with N
    batch = tokenizer.encode_batch(pieces, add_special_tokens=False)
    for row, mask, piece in zip(batch["input_ids"], batch["attention_mask"], pieces):
        assert row[mask.bool()].tolist() == naive_kmer_ids(piece, k, stride)
    if stride == 1:
        assert ids.count(UNK_ID) == k + 1


def test_n_treatment(bpe):
    assert build_tokenizer("char").encode("ACGTN", add_special_tokens=False) == [5, 6, 7, 8, 9]
    assert build_tokenizer("kmer", k=3).encode("AANAAA", add_special_tokens=False) == [
        UNK_ID,
        UNK_ID,
        UNK_ID,
        5,
    ]
    assert UNK_ID not in bpe.encode("NNNNACGTNNNN", add_special_tokens=False)  # N is an ordinary BPE symbol


def test_input_policy(tokenizer):
    seq = "ACGTTGCAACGGTAACCTTGGA"
    ids = tokenizer.encode(seq, add_special_tokens=False)
    assert tokenizer.encode(seq.lower(), add_special_tokens=False) == ids
    assert tokenizer.encode(seq.replace("T", "U"), add_special_tokens=False) == ids
    assert tokenizer.encode(" ACGTTGCAAC\nGGTAACCTTGGA\t", add_special_tokens=False) == ids
    iupac, n = (tokenizer.encode(s, add_special_tokens=False) for s in ("ACGTRYKM", "ACGTNNNN"))
    assert iupac == n  # IUPAC -> N
    with pytest.raises(ValueError, match=r"'X' at position 5"):
        tokenizer.encode("ACGTXACGT", add_special_tokens=False)
    with pytest.raises(ValueError, match=r"'-' at position 3"):
        tokenizer.encode("AC-GT", add_special_tokens=False)
    with pytest.raises(ValueError, match="empty"):
        tokenizer.encode(" \n", add_special_tokens=False)
    with pytest.raises(ValueError, match=r"sequence 1: invalid character '\*' at position 2"):
        tokenizer.encode_batch(["ACGT", "A*GT"])


def test_encode_batch_padding_and_truncation(tokenizer, genome_windows):
    seqs = [w[:n] for w, n in zip(genome_windows[1], (128, 40, 97, 7))]
    lengths = [len(tokenizer.encode(s, add_special_tokens=False)) for s in seqs]
    batch = tokenizer.encode_batch(seqs)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.dtype == mask.dtype == torch.long
    assert ids.shape == mask.shape == (4, max(lengths) + 2)
    for row, n, seq in zip(range(4), lengths, seqs):
        assert ids[row, 0] == CLS_ID and ids[row, n + 1] == SEP_ID
        assert ids[row, 1 : n + 1].tolist() == tokenizer.encode(seq, add_special_tokens=False)
        assert (ids[row, n + 2 :] == PAD_ID).all()
        assert mask[row].tolist() == [1] * (n + 2) + [0] * (ids.shape[1] - n - 2)

    cut = tokenizer.encode_batch(seqs, max_length=12)
    assert cut["input_ids"].shape[1] == 12
    assert cut["input_ids"][0].tolist() == [
        CLS_ID,
        *tokenizer.encode(seqs[0], add_special_tokens=False)[:10],
        SEP_ID,
    ]
    with pytest.raises(ValueError, match=rf"sequence 0 \(128 bp\) has {lengths[0]} tokens .* max_length 12"):
        tokenizer.encode_batch(seqs, max_length=12, truncation=False)

    plain = tokenizer.encode_batch(seqs, add_special_tokens=False)
    assert plain["input_ids"][0, : lengths[0]].tolist() == tokenizer.encode(seqs[0], add_special_tokens=False)
    assert plain["attention_mask"].sum(1).tolist() == lengths


def test_save_load_round_trip(tokenizer, genome_windows, tmp_path):
    held_out = genome_windows[1][:40]
    tokenizer.save_pretrained(tmp_path / "tok")
    config = json.loads((tmp_path / "tok" / "tokenizer_config.json").read_text())
    assert config["name"] == tokenizer.name and config["params"] == tokenizer.params
    loaded = load_tokenizer(tmp_path / "tok")
    assert type(loaded) is type(tokenizer) and loaded.vocab_size == tokenizer.vocab_size
    assert [loaded.encode(s) for s in held_out[:4]] == [tokenizer.encode(s) for s in held_out[:4]]
    assert torch.equal(
        loaded.encode_batch(held_out)["input_ids"], tokenizer.encode_batch(held_out)["input_ids"]
    )


def test_vocab_usage_and_targets(tokenizer, genome_windows):
    held_out = genome_windows[1][:200]
    counts = tokenizer.token_counts(held_out)
    assert counts.shape == (tokenizer.vocab_size,)
    assert counts.sum() == tokenizer.encode_batch(held_out, add_special_tokens=False)["attention_mask"].sum()
    assert counts[:5].sum() == 0  # windows without N: no special token
    usage = (counts[5:] > 0).mean()
    assert 0 < usage <= 1
    assert 0 < tokenizer.tokens_per_bp(held_out) <= 1
    ids = tokenizer.encode_batch(held_out[:3])["input_ids"]
    targets = tokenizer.mlm_targets(ids)
    assert targets.shape == (*ids.shape, len(tokenizer.mlm_target_sizes))
    for level, size in enumerate(tokenizer.mlm_target_sizes):
        assert int(targets[..., level].max()) < size
    if not isinstance(tokenizer, CodebookTokenizer):
        assert tokenizer.mlm_target_sizes == [tokenizer.vocab_size]
        assert torch.equal(targets, ids[..., None])


@pytest.mark.parametrize("levels,stride", [(1, 1), (2, 1), (2, 2), (3, 4)])
def test_codebook_ids_are_mixed_radix_of_level_codes(genome_windows, levels, stride):
    model = untrained_vqvae(levels=levels, stride=stride, depth=3)
    tokenizer = build_tokenizer("hrq", model=model)
    assert tokenizer.level_sizes == model.level_sizes == [16 * 2**n for n in range(levels)]
    assert tokenizer.vocab_size == 5 + int(np.prod(model.level_sizes))
    assert tokenizer.params == {"level_sizes": model.level_sizes, "stride": stride, "batch_size": 256}
    seq = genome_windows[1][0][:101]
    ids = torch.tensor(tokenizer.encode(seq, add_special_tokens=False))
    assert len(ids) == -(-101 // stride)
    codes = model.tokenize(torch.tensor(to_indices(seq), dtype=torch.long)[None])[0]
    assert torch.equal(tokenizer.ids_to_levels(ids), codes)
    radix = [int(np.prod(model.level_sizes[level + 1 :])) for level in range(levels)]
    assert ids.tolist() == [5 + sum(int(c) * r for c, r in zip(row, radix)) for row in codes]
    batch = tokenizer.encode_batch([seq])["input_ids"]
    levels_of_batch = tokenizer.ids_to_levels(batch)
    assert (levels_of_batch[0, 0] == -1).all() and (levels_of_batch[0, -1] == -1).all()
    assert torch.equal(tokenizer.mlm_targets(batch), levels_of_batch)
    assert tokenizer.mlm_target_sizes == model.level_sizes
    assert [tuple(c.shape) for c in tokenizer.codebooks()] == [(size, 32) for size in model.level_sizes]
    assert tokenizer.codes_to_vectors(codes).shape == (len(ids), 32)


def test_codebook_batch_rows_do_not_depend_on_batch_mates(genome_windows):
    """Mixed lengths: each row must equal encoding the sequence alone (no padding leaks into the
    conv receptive field), also across several forward-pass chunks."""
    tokenizer = CodebookTokenizer(untrained_vqvae(levels=2), name="hrq", batch_size=3)
    seqs = [w[:n] for w, n in zip(genome_windows[1], (128, 60, 128, 91, 60, 128, 128, 5))]
    ids = tokenizer.encode_batch(seqs, add_special_tokens=False)["input_ids"]
    for row, seq in zip(ids, seqs):
        assert row[: len(seq)].tolist() == tokenizer.encode(seq, add_special_tokens=False)


def test_bpe_is_deterministic_with_specials_first(bpe, genome_windows, tmp_path):
    again = BPETokenizer(vocab_size=BPE_VOCAB).train(iter(genome_windows[0]))
    bpe.save_pretrained(tmp_path / "a")
    again.save_pretrained(tmp_path / "b")
    assert (tmp_path / "a" / "tokenizer.json").read_text() == (tmp_path / "b" / "tokenizer.json").read_text()
    vocab = bpe._tokenizer.get_vocab()
    assert [vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 1, 2, 3, 4]
    assert bpe.vocab_size == BPE_VOCAB
    assert bpe.tokens_per_bp(genome_windows[1]) < 0.35  # merges compress held-out sequence
    with pytest.raises(RuntimeError, match="not trained"):
        BPETokenizer().encode("ACGT", add_special_tokens=False)


def test_gue_rows(tokenizer, shared_data):
    with open(shared_data / "GUE" / "prom" / "prom_core_all" / "train.csv") as handle:
        rows = [row["sequence"] for _, row in zip(range(16), csv.DictReader(handle))]
    batch = tokenizer.encode_batch(rows, max_length=512)
    lengths = batch["attention_mask"].sum(1)
    assert lengths.tolist() == [len(tokenizer.encode(s, add_special_tokens=False)) + 2 for s in rows]


def test_build_rejects_bad_params():
    with pytest.raises(ValueError, match="unknown tokenizer"):
        build_tokenizer("word")
    with pytest.raises(ValueError, match="stride"):
        build_tokenizer("kmer", k=3, stride=4)


def test_hugging_face_surface(tokenizer, genome_windows, tmp_path):
    """What a Hugging Face user reaches for: encode adds [CLS]/[SEP] unless told not to, the
    call is encode_batch, special ids are attributes, save_pretrained / from_pretrained round-trip."""
    seq = genome_windows[1][0][:120]
    plain = tokenizer.encode(seq, add_special_tokens=False)
    assert tokenizer.encode(seq) == [tokenizer.cls_token_id, *plain, tokenizer.sep_token_id]
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.mask_token_id) == (PAD_ID, UNK_ID, 4)
    called = tokenizer(seq)
    assert called["input_ids"][0].tolist() == tokenizer.encode(seq)
    assert torch.equal(
        tokenizer([seq, seq[:50]])["input_ids"], tokenizer.encode_batch([seq, seq[:50]])["input_ids"]
    )
    loaded = type(tokenizer).from_pretrained(tokenizer.save_pretrained(tmp_path / "tok"))
    assert loaded.encode(seq) == tokenizer.encode(seq)
    other = CodebookTokenizer if not isinstance(tokenizer, CodebookTokenizer) else BPETokenizer
    with pytest.raises(ValueError, match=f"not a {other.__name__}"):
        other.from_pretrained(tmp_path / "tok")


@pytest.mark.parametrize("name,params", [*SIMPLE, ("bpe", {})], ids=lambda p: str(p))
def test_decode_inverts_encode(name, params, bpe, genome_windows):
    """Rule-based tokenizers and BPE decode back to the very bases, N included where the
    tokenizer keeps it; [CLS]/[SEP]/[PAD] hold no bases."""
    tokenizer = bpe if name == "bpe" else build_tokenizer(name, **params)
    for seq in [w[:97] for w in genome_windows[1][:20]] + ["ACGTA", "A"]:
        assert tokenizer.decode(tokenizer.encode(seq)) == seq
        assert tokenizer.decode(tokenizer.encode(seq), skip_special_tokens=False) == f"[CLS]{seq}[SEP]"
    padded = tokenizer.encode_batch(["ACGTACGTAC", "ACG"])["input_ids"]
    assert tokenizer.decode(padded[1]) == "ACG"
    with_n = "ACGTNNACGTTGCA"
    expected = with_n if name in ("char", "bpe") else None
    if expected is None:  # k-mers: bases seen only through [UNK] k-mers come back as N
        decoded = tokenizer.decode(tokenizer.encode(with_n))
        assert len(decoded) == len(with_n)
        assert all(d == s or d == "N" for d, s in zip(decoded, with_n))
        assert decoded[4:6] == "NN"
    else:
        assert tokenizer.decode(tokenizer.encode(with_n)) == expected
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tokenizer.decode([tokenizer.vocab_size])


def test_codebook_decode_is_the_vqvae_reconstruction(genome_windows):
    """VQ/HRQ decode through the model's decoder: the bases its own forward pass reconstructs."""
    model = untrained_vqvae(levels=2, stride=2)
    tokenizer = build_tokenizer("hrq", model=model)
    seq = genome_windows[1][0][:64]
    with torch.no_grad():
        expected = model(torch.from_numpy(to_indices(seq)[None].astype(np.int64))).logits.argmax(-1)[0]
    assert tokenizer.decode(tokenizer.encode(seq)) == "".join("ACGT"[b] for b in expected.tolist())


@pytest.mark.parametrize(
    "spec,cls",
    [
        ({"type": "char"}, "CharTokenizer"),
        ({"type": "kmer", "k": 4, "stride": 4}, "KmerTokenizer"),
        ({"type": "bpe", "vocab_size": 64}, "BPETokenizer"),
    ],
)
def test_one_registry_builds_and_trains_from_the_config_entry(spec, cls, genome_windows):
    """A config entry's type picks the class in TOKENIZERS; the class builds and trains itself."""
    from vqdna.tokenizers import TOKENIZERS
    from vqdna.train.tokenizer import train_tokenizer

    tokenizer, history = train_tokenizer(spec, genome_windows[0][:50], genome_windows[1][:5])
    assert type(tokenizer).__name__ == cls and TOKENIZERS[spec["type"]] is type(tokenizer)
    assert history == []
    with pytest.raises(ValueError, match="unknown tokenizer type 'wordpiece'"):
        train_tokenizer({"type": "wordpiece"}, [], [])


def test_a_tokenizer_of_your_own_is_one_class_and_one_config_entry(tmp_path, monkeypatch, genome_windows):
    """The README's example class, named in config as module:Class: built and trained from the
    entry, saved, and loaded back by name in a process that never imported it (the class path is
    saved beside the params). Importing a class a folder names runs its module's code, so the
    loader asks for trust_remote_code (the user's own folder here); without it, it refuses."""
    import subprocess
    import sys

    from tests.test_workflow import readme_tokenizer_module
    from vqdna.tokenizers import load_tokenizer, tokenizer_class
    from vqdna.train.tokenizer import train_tokenizer

    modules = readme_tokenizer_module(tmp_path / "modules")
    monkeypatch.syspath_prepend(str(modules))
    tokenizer, history = train_tokenizer(
        {"type": "my_tokenizers:PurinePyrimidine"}, genome_windows[0][:5], []
    )
    assert history == [] and tokenizer.decode(tokenizer.encode("ACGTN")) == "RYRYN"
    folder = tokenizer.save_pretrained(tmp_path / "ry")
    code = (
        "from vqdna.tokenizers import load_tokenizer; "
        f"print(load_tokenizer({str(folder)!r}, trust_remote_code=True).encode('AGCT'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(modules), "PATH": ""},
    )
    assert done.stdout.strip() == str(tokenizer.encode("AGCT")), done.stderr
    with pytest.raises(ValueError, match="trust_remote_code"):
        load_tokenizer(folder)
    with pytest.raises(ValueError, match="cannot import"):
        tokenizer_class("no_such_module:Thing")
    with pytest.raises(ValueError, match="not a vqdna.tokenizers.Tokenizer subclass"):
        tokenizer_class("json:JSONDecoder")


def test_a_subclass_does_not_take_over_its_parents_type():
    """Registration is by a class's own config_types: a test's or user's subclass of a built-in
    (say, a CodebookTokenizer variant) leaves "vq"/"hrq" mapped to the built-in."""
    from vqdna.tokenizers import TOKENIZERS

    class Variant(CodebookTokenizer):
        pass

    assert TOKENIZERS["hrq"] is CodebookTokenizer and Variant not in TOKENIZERS.values()


def test_one_level_hrq_of_the_levels_ablation_saves_and_reloads(tmp_path):
    """`hrq~levels=1` (the levels ablation) is an HRQ tokenizer with one level: it reloads as
    such, and pre-training on it can read it back."""
    from vqdna.model.vqvae import VQVAE, VQVAEConfig

    model = VQVAE(VQVAEConfig(stem_dim=16, dim=16, depth=2, codebook_size=8, levels=1)).eval()
    path = build_tokenizer("hrq", model=model).save_pretrained(tmp_path / "hrq1")
    again = load_tokenizer(path)
    assert again.level_sizes == [8] and again.encode("ACGTACGT") == build_tokenizer(
        "hrq", model=model
    ).encode("ACGTACGT")


def test_codebook_defaults_are_the_study_settings():
    """What a vq/hrq entry leaves out takes config/config.yaml's value, so `{"type": "hrq"}`
    alone is the study's HRQ (two levels), not the class defaults."""
    from pathlib import Path

    import yaml

    from vqdna.core.settings import VQVAEConfig
    from vqdna.tokenizers.codebook import STUDY_DEFAULTS, study_spec

    vqvae = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())[
        "vqvae"
    ]
    assert STUDY_DEFAULTS == {k: vqvae[k] for k in STUDY_DEFAULTS}
    assert study_spec({"type": "hrq"})["levels"] == 2 and study_spec({"type": "vq"})["levels"] == 1
    assert study_spec({"type": "hrq", "levels": 3, "lr": 0.1})["lr"] == 0.1
    config = VQVAEConfig.from_spec(study_spec({"type": "hrq"}))
    assert {k: getattr(config, k) for k in ("stem_dim", "dim", "depth", "codebook_size", "decay")} == {
        k: vqvae[k] for k in ("stem_dim", "dim", "depth", "codebook_size", "decay")
    }


def test_a_learning_tokenizer_without_save_and_load_is_refused(tmp_path):
    """A class that learns (train_from_spec) but keeps what it learned only in memory would be
    reloaded untrained: save_pretrained refuses it, naming what to implement."""
    from vqdna.tokenizers import N_SPECIAL, Tokenizer

    class Forgetful(Tokenizer):
        name = "forgetful"
        vocab_size = N_SPECIAL + 4
        params = {}

        @classmethod
        def from_spec(cls, spec):
            return cls()

        @classmethod
        def train_from_spec(cls, spec, train_windows, val_windows, seed=0, **_):
            return cls(), [{"step": 1}]

        def _encode(self, seq):
            return np.zeros(len(seq), dtype=self.id_dtype) + N_SPECIAL

        def _decode(self, ids):
            return "A" * len(ids)

    with pytest.raises(TypeError, match="learns from the corpus.*_save and _load"):
        Forgetful().save_pretrained(tmp_path / "f")
    assert not (tmp_path / "f").exists()


def test_the_nearest_trainer_along_the_class_hierarchy_trains_it(monkeypatch):
    """train_tokenizer takes, along the class's MRO, the first of a trainer registered in
    vqdna.train.tokenizer.TRAINERS (VQ/HRQ: their VQ-VAE's training loop, which the tokenizer
    module never imports) and a class's own train_from_spec (the hook of a class of one's own)."""
    from vqdna.tokenizers import CodebookTokenizer
    from vqdna.train import tokenizer as stage

    calls = []
    monkeypatch.setitem(stage.TRAINERS, CodebookTokenizer, lambda cls, *args: calls.append(cls) or (None, []))
    stage.train_tokenizer({"type": "hrq"}, [], [])

    class SelfTrained(CodebookTokenizer):
        @classmethod
        def train_from_spec(cls, spec, train_windows, val_windows, seed=0, **_):
            return "own", [{"seed": seed}]

    class Inherits(SelfTrained):
        pass

    monkeypatch.setattr(stage, "tokenizer_class", lambda kind: Inherits)
    assert stage.train_tokenizer({"type": "x"}, [], [], seed=7) == ("own", [{"seed": 7}])
    assert calls == [CodebookTokenizer]
