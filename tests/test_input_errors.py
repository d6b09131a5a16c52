"""Malformed input, as a hostile user would write it: every case must fail with a precise error
(the character as written and its position, or the file and the physical line), never silently.
Classes (issue 12): characters, loader errors, config typos, tokenizer folders, API misuse, and
bounded memory on long records (windowed VQ/HRQ and BPE ids equal a whole-sequence pass)."""

import bz2
import gzip
import json
import lzma
import re
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml

from vqdna.core import files
from vqdna.core.sequence import normalize
from vqdna.data import splitting, suites, tasks
from vqdna.tokenizers import BPETokenizer, CodebookTokenizer, build_tokenizer, load_tokenizer

REPO = Path(__file__).resolve().parents[1]


def write(path, content, compress=None):
    raw = content.encode() if isinstance(content, str) else content
    path.write_bytes(
        {None: lambda b: b, "gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[compress](raw)
    )
    return path


# ---------------------------------------------------------------- characters, judged as written


@pytest.mark.parametrize(
    "text, char, position",
    [
        ("ACGﬀT", "ﬀ", 4),  # ligature: .upper() made it "FF" (one char became two)
        ("ACıG", "ı", 3),  # dotless i: .upper() made it "I"
        ("ACſG", "ſ", 3),  # long s: .upper() made it "S", an IUPAC code -> silently N
        ("AC\u212aG", "\u212a", 3),  # Kelvin sign, not the letter K
        ("ACǅG", "ǅ", 3),  # title-case digraph
        ("AC\x0bG", "\x0b", 3),  # vertical tab: not whitespace under the policy
        ("AC\x0cG", "\x0c", 3),  # form feed
        ("AC\x1cG", "\x1c", 3),  # file separator (str.split() drops it as whitespace)
        ("AC\u00a0G", "\u00a0", 3),  # no-break space
        ("AC G\u3000T", "\u3000", 5),  # ideographic space; the ASCII space before it is counted
        ("A C-G", "-", 4),  # position in the input as written, whitespace included
        ("\ufeffACGT", "\ufeff", 1),  # byte-order mark inside a sequence
        ("ACG1", "1", 4),
        ("AC\x00G", "\x00", 3),
        ("acgé", "é", 4),
    ],
)
def test_invalid_character_is_named_as_written_with_its_raw_position(text, char, position):
    with pytest.raises(ValueError) as error:
        normalize(text, where="in.fa line 7")
    message = str(error.value)
    assert message.startswith("in.fa line 7: invalid character")
    assert f"{char!r} at position {position} (U+{ord(char):04X})" in message


def test_valid_alphabet_and_ascii_whitespace_pass_unchanged():
    assert normalize("ACGT\r\n acgu\tNRYSWKMBDHV rysw") == "ACGTACGTNNNNNNNNNNNNNNN"


# ---------------------------------------------------------------- CSV loader: file and physical line


@pytest.mark.parametrize(
    "content, line, words",
    [
        (b"sequence,label\nACGT,0\nAC\xffGT,1\n", 3, "not UTF-8"),
        (b"sequence,label\nACGT,0\nACGT,1,x\n", 3, "3 fields"),
        (b"sequence,label\nACGT,0,\nACGT,1,\n", 2, "trailing separator"),
        (b"sequence,label\nACGT\n", 2, "1 fields"),
        (b"sequence,label\nACGT,nan\n", 2, "label 'nan'"),
        (b"sequence,label\nACGT,0\nACGT,inf\n", 3, "label 'inf'"),
        (b"sequence,label\nACGT,1.5\n", 2, "label '1.5'"),
        (b"sequence,label\nACGT,18446744073709551617\n", 2, "label '18446744073709551617'"),  # > int64
        (b"sequence,label\nACGT,1e30\n", 2, "label '1e30'"),
        (b"sequence,label\n\nACGT,0\n\nAC-T,1\n", 5, "'-' at position 3"),  # blank lines counted
        (b'sequence,label\n"AC\nGT",0\nACXT,1\n', 4, "'X' at position 3"),  # quoted two-line cell
        (b"sequence,label\n AC \xc3\xa9,0\n", 2, "'\xe9' at position 5"),
        (b'sequence,label\n"ACGT,0\n', 2, "malformed table"),
        (b"\n\nseq,label\nACGT,0\n", 3, "missing column(s) ['sequence']"),
    ],
)
def test_csv_errors_name_the_file_and_physical_line(tmp_path, content, line, words):
    path = write(tmp_path / "split.csv", content)
    with pytest.raises(ValueError) as error:
        tasks.load_csv_split(path)
    assert f"{path} line {line}: " in str(error.value) and words in str(error.value), str(error.value)


@pytest.mark.parametrize("compress, kind", [("bz2", "bzip2"), ("xz", "xz")])
def test_other_compression_behind_a_gz_name_is_named(tmp_path, compress, kind):
    path = write(tmp_path / "train.csv.gz", "sequence,label\nACGT,0\n", compress)
    with pytest.raises(ValueError, match=re.escape(f"{path} line 1: {kind}-compressed")):
        tasks.load_csv_split(path)


def test_truncated_gzip_csv_names_the_last_line_read(tmp_path):
    blob = gzip.compress(("sequence,label\n" + "ACGTACGTAC,0\n" * 5000).encode())
    path = write(tmp_path / "t.csv.gz", blob[: len(blob) // 2])
    with pytest.raises(ValueError, match=re.escape(f"{path}: corrupt or truncated gzip after line ")):
        tasks.load_csv_split(path)


def test_byte_order_mark_is_accepted_in_csv_and_fasta(tmp_path):
    frame = tasks.load_csv_split(write(tmp_path / "a.csv", "\ufeffsequence,label\nACGT,0\n"))
    assert frame["sequence"].tolist() == ["ACGT"]
    assert files.read_fasta(write(tmp_path / "a.fa", "\ufeff>x\nACGT\n")) == {"x": "ACGT"}


# ---------------------------------------------------------------- FASTA reader


@pytest.mark.parametrize(
    "content, line, words",
    [
        (b">a\nACGT\n>b\n>c\nAC\n", 3, "record 'b' has no sequence"),
        (b">a\nACGT\n>b\n", 3, "record 'b' has no sequence"),
        (b">a\nAC\xe9GT\n", 2, "not UTF-8"),  # latin-1 byte: no replacement character
        (b">a\nAC\x0bGT\n", 2, "'\\x0b' at position 3"),  # vertical tab is not dropped
        (b">a\nACGT\n>a\nAC\n", 3, "duplicate FASTA header 'a'"),
        (b"ACGT\n>a\nAC\n", 1, "sequence before the first '>'"),
    ],
)
def test_fasta_errors_name_the_file_and_line(tmp_path, content, line, words):
    path = write(tmp_path / "x.fa", content)
    with pytest.raises(ValueError) as error:
        files.read_fasta(path)
    assert f"{path} line {line}: " in str(error.value) and words in str(error.value), str(error.value)


def test_long_line_is_read_in_pieces_and_errors_keep_the_raw_position(tmp_path):
    line = "ACGTTGCA" * 5000
    path = write(tmp_path / "long.fa", f">x\n{line}\n")
    chunks = list(files.stream_fasta(path, chunk_chars=1000))
    assert max(len(c) for _, c in chunks) <= 1000 and "".join(c for _, c in chunks) == line
    bad = write(tmp_path / "bad.fa", f">x\n{line[:30000]}Z{line[30001:]}\n")
    with pytest.raises(ValueError, match=re.escape(f"{bad} line 2: invalid character 'Z' at position 30001")):
        list(files.stream_fasta(bad, chunk_chars=1000))


# ---------------------------------------------------------------- task preparation


def test_unseen_test_label_names_file_and_line(tmp_path):
    write(tmp_path / "train.csv", "sequence,label\nACGT,0\nACGA,1\n")
    write(tmp_path / "dev.csv", "sequence,label\nACGT,0\n")
    write(tmp_path / "test.csv", "sequence,label\nACGT,1\n\nACGG,2\n")
    expected = f"{tmp_path / 'test.csv'} line 4: label 2 does not occur in"
    with pytest.raises(ValueError, match=re.escape(expected)):
        tasks.load_gue_task(tmp_path)


def test_tiny_csv_table_names_the_empty_split_and_the_file(tmp_path):
    path = write(tmp_path / "tiny.csv", "sequence,label\nACGT,0\nACGA,1\nAGGA,1\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}: split 'dev' is empty")):
        tasks.csv_table_task(path, "sequence", "label", {"train": 0.8, "dev": 0.1, "test": 0.1}, 0)


def test_huge_label_is_reported_without_allocating_its_range():
    frame = pd.DataFrame({"sequence": ["ACGT", "ACGA"], "label": [0, 10**15]})
    splits = {name: frame for name in splitting.SPLITS}
    with pytest.raises(ValueError, match=r"train lacks classes \[1, 2, 3"):
        splitting.check_labels(splits, where="t.csv")


def test_label_table_duplicate_names_the_line(tmp_path):
    path = write(tmp_path / "labels.tsv", "name\tlabel\nA1 x\tB.1\n\nA1\tB.2\n")
    with pytest.raises(ValueError, match=re.escape(f"{path} line 4: duplicate name 'A1' (first on line 2)")):
        tasks.read_label_table(path, "name", "label")


# ---------------------------------------------------------------- config: closed at every level

SCHEMA = jsonschema.Draft202012Validator(yaml.safe_load((REPO / "config" / "schema.yaml").read_text()))


def config_errors(config):
    return [(error.json_path, error.message) for error in SCHEMA.iter_errors(config)]


@pytest.mark.parametrize("name", ["config", "paper", "smoke"])
def test_shipped_configs_pass_the_closed_schema(name):
    assert config_errors(yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())) == []


@pytest.mark.parametrize(
    "path, key",
    [
        (["tokenizers", "kmer6"], "strdie"),
        (["data", "suites", "gue"], "max_trian"),
        (["data"], "gue_dri"),
        (["vqvae"], "depht"),
        (["encoder"], "heads_"),
        (["pretrain"], "mask_rate"),
        (["finetune"], "epoch"),
        (["corpus", "extra_fasta", 0], "speceis"),
        (["ablations"], "mask_ratios"),
        (["sarscov2"], "genomes"),
    ],
)
def test_misspelt_nested_key_is_an_error_naming_key_and_path(path, key):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["corpus"]["extra_fasta"] = [{"fasta": "x.fa"}]
    target = config
    for step in path:
        target = target[step]
    target[key] = 1
    errors = config_errors(config)
    expected = "$." + ".".join(f"[{p}]" if isinstance(p, int) else p for p in path).replace(".[", "[")
    assert errors == [(expected, f"Additional properties are not allowed ('{key}' was unexpected)")]


def test_misspelt_task_param_is_an_error_naming_it():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["data"]["suites"]["embedded"]["task_params"] = {"coding": {"lenght": 100}}
    with pytest.raises(ValueError, match=r"task_params\.coding: unknown parameter 'lenght'"):
        suites.plan_tasks(config)


# ---------------------------------------------------------------- load_tokenizer on damaged folders


def saved_tokenizer(tmp_path, kind):
    if kind == "bpe":
        tok = build_tokenizer("bpe", vocab_size=40).train(["ACGTACGGTTAC" * 5, "GGCATTACN" * 4])
    else:
        tok = build_tokenizer("kmer", k=3)
    return tok.save_pretrained(tmp_path / kind)


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda p: (p / "tokenizer_config.json").unlink(), "tokenizer_config.json is absent"),
        (
            lambda p: (p / "tokenizer_config.json").write_text("{name: kmer"),
            "tokenizer_config.json: not valid JSON",
        ),
        (
            lambda p: (p / "tokenizer_config.json").write_text('{"name": "wordpiece", "params": {}}'),
            "unknown tokenizer 'wordpiece'",
        ),
        (
            lambda p: (p / "tokenizer_config.json").write_text('{"name": "kmer", "params": {"k": 99}}'),
            "tokenizer_config.json: params {'k': 99} do not fit kmer",
        ),
        (
            lambda p: (p / "tokenizer_config.json").write_text('{"name": "kmer", "params": {"q": 3}}'),
            "do not fit kmer",
        ),
        (lambda p: (p / "tokenizer_config.json").write_text('["kmer"]'), "expected {'name'"),
    ],
)
def test_damaged_config_names_the_file(tmp_path, damage, words):
    path = saved_tokenizer(tmp_path, "kmer")
    damage(path)
    with pytest.raises(ValueError) as error:
        load_tokenizer(path)
    assert str(path) in str(error.value) and words in str(error.value), str(error.value)


def test_bpe_folder_with_another_kind_of_hf_tokenizer_is_refused(tmp_path):
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models

    path = saved_tokenizer(tmp_path, "bpe")
    HFTokenizer(models.WordPiece({"[UNK]": 0, "A": 1}, unk_token="[UNK]")).save(str(path / "tokenizer.json"))
    with pytest.raises(ValueError, match=re.escape(f"{path / 'tokenizer.json'}: a WordPiece tokenizer")):
        load_tokenizer(path)
    (path / "tokenizer.json").write_text('{"model": {"type": "BPE", "vocab": {"[UNK]": 0}}}')
    with pytest.raises(ValueError, match=r"tokenizer.json: not a DNA BPE .*\['A', 'C', 'G', 'T', 'N'\]"):
        load_tokenizer(path)
    (path / "tokenizer.json").unlink()
    with pytest.raises(ValueError, match=re.escape(f"{path / 'tokenizer.json'} is absent")):
        load_tokenizer(path)


def tiny_vqvae(**sizes):
    from vqdna.model.vqvae import VQVAE, VQVAEConfig

    return VQVAE(VQVAEConfig(**{"stem_dim": 16, "dim": 16, "depth": 3, "codebook_size": 16, **sizes})).eval()


def test_codebook_folder_damage_is_named(tmp_path):
    hrq = build_tokenizer("hrq", model=tiny_vqvae(levels=2)).save_pretrained(tmp_path / "hrq")
    config = json.loads((hrq / "tokenizer_config.json").read_text())
    (hrq / "tokenizer_config.json").write_text(json.dumps({**config, "name": "vq"}))
    with pytest.raises(ValueError, match=re.escape(f"{hrq / 'vqvae.pt'}: 2 levels, not a vq tokenizer")):
        load_tokenizer(hrq)
    path = build_tokenizer("vq", model=tiny_vqvae()).save_pretrained(tmp_path / "vq")
    config = json.loads((path / "tokenizer_config.json").read_text())
    params = {**config["params"], "stride": 4}
    (path / "tokenizer_config.json").write_text(json.dumps({**config, "params": params}))
    with pytest.raises(ValueError, match=r"vqvae.pt: the model has .*'stride': 1.* says .*'stride': 4"):
        load_tokenizer(path)
    (path / "vqvae.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=re.escape(f"{path / 'vqvae.pt'}: not a VQ-VAE checkpoint")):
        load_tokenizer(path)
    (path / "vqvae.pt").unlink()
    with pytest.raises(ValueError, match="vqvae.pt is absent"):
        load_tokenizer(path)
    with pytest.raises(ValueError, match="not a directory"):
        load_tokenizer(tmp_path / "nowhere")


# ---------------------------------------------------------------- API misuse


def test_bare_string_and_bad_members_are_named():
    tok = build_tokenizer("char")
    for call in (tok.encode_batch, tok.token_counts, tok.tokens_per_bp):
        with pytest.raises(TypeError, match="takes a list of sequences, got one str"):
            call("ACGTAC")
    with pytest.raises(ValueError, match=r"^sequence 1: invalid character 'X' at position 2"):
        tok.token_counts(["ACGT", "AXGT"])
    with pytest.raises(ValueError, match=r"^sequence 2: sequence must be a string, got int"):
        tok.tokens_per_bp(["ACGT", "AC", 5])


# ---------------------------------------------------------------- bounded memory on long records


@pytest.mark.parametrize("levels, stride", [(1, 1), (2, 2), (3, 4)])
def test_windowed_codebook_ids_equal_a_whole_sequence_pass(levels, stride):
    import torch

    torch.manual_seed(levels)
    model = tiny_vqvae(levels=levels, stride=stride)
    rng = np.random.default_rng(0)
    seq = "".join(rng.choice(list("ACGTN"), p=[0.24, 0.24, 0.24, 0.24, 0.04], size=6003))
    whole = CodebookTokenizer(model, window=10**9).encode(seq, add_special_tokens=False)
    windowed = CodebookTokenizer(model, window=500)
    widths, tokenize = [], model.tokenize
    model.tokenize = lambda idx: widths.append(idx.shape[1]) or tokenize(idx)
    assert len(set(whole)) > 5 and windowed.encode(seq, add_special_tokens=False) == whole
    ids = windowed.encode_array(seq)  # the smallest dtype holding the vocabulary: 1-4 bytes per id
    assert ids.dtype == {1: np.int8, 2: np.int16, 3: np.int32}[levels] and ids.tolist() == whole
    assert max(widths) <= 500 + 2 * windowed.margin * stride  # memory: one window, whatever the length
    del model.tokenize

    class Short(CodebookTokenizer):  # windows without context: ids near their edges differ
        margin = 0

    assert Short(model, window=500).encode(seq, add_special_tokens=False) != whole


def test_id_dtype_is_the_smallest_signed_one_holding_the_vocabulary():
    from vqdna.tokenizers import id_dtype

    assert [id_dtype(n) for n in (10, 128, 129, 32768, 32769, 2**31)] == [
        np.int8,
        np.int8,
        np.int16,
        np.int16,
        np.int32,
        np.int32,
    ]
    assert id_dtype(2**31 + 1) == np.int64
    for name, params in (("char", {}), ("kmer", {"k": 3}), ("kmer", {"k": 6, "stride": 6})):
        tokenizer = build_tokenizer(name, **params)
        ids = tokenizer.encode_array("ACGTNACGTTGCA")
        assert ids.dtype == id_dtype(tokenizer.vocab_size)
        assert ids.tolist() == tokenizer.encode("ACGTNACGTTGCA", add_special_tokens=False)


@pytest.fixture(scope="module")
def yeast_bpe(genome_windows):
    """A 512-token BPE trained on chromosome I windows (its longest tokens are a few bp)."""
    return build_tokenizer("bpe", vocab_size=512).train(genome_windows[0])


def _windowed_bpe_ids(tokenizer, seq, window, overlap):
    """``tokenizer``'s ids of ``seq`` read in ``window``-bp windows, plus the lengths HF was given."""
    widths, whole, sizes = [], tokenizer._encode_whole, (tokenizer.window, tokenizer.overlap)
    tokenizer.window, tokenizer.overlap = window, overlap
    tokenizer._encode_whole = lambda piece: widths.append(len(piece)) or whole(piece)
    try:
        return tokenizer.encode_array(seq), widths
    finally:
        del tokenizer._encode_whole
        tokenizer.window, tokenizer.overlap = sizes


def test_windowed_bpe_ids_equal_a_whole_record_pass_on_real_sequence(yeast_bpe, yeast_chromosome):
    """Chromosome I (230 kbp, telomeric repeats included) cut at ~250 places: the ids are those of
    one HF pass, and HF never sees more than a window."""
    whole = yeast_bpe._encode_whole(yeast_chromosome)
    windowed, widths = _windowed_bpe_ids(yeast_bpe, yeast_chromosome, window=1000, overlap=100)
    assert len(widths) > len(yeast_chromosome) / 1000 and max(widths) <= 1000
    assert windowed.dtype == np.int16 and np.array_equal(windowed, whole)

    class Naive(BPETokenizer):  # windows cut without looking for an agreeing boundary: ids differ
        def _encode_long(self, seq):
            return np.concatenate(
                [self._encode_whole(seq[i : i + self.window]) for i in range(0, len(seq), self.window)]
            )

    naive = Naive(window=1000, overlap=100)
    naive._tokenizer = yeast_bpe._tokenizer
    assert not np.array_equal(naive.encode_array(yeast_chromosome), yeast_bpe._encode_whole(yeast_chromosome))


def test_windowed_bpe_ids_equal_a_whole_record_pass_on_sars_cov_2_genomes(yeast_bpe, shared_data):
    """Real genomes of another organism than the training one (~30 cuts each)."""
    for name in ("ncov_reference_seq.fasta", "nextclade_2023-01-09_reference.fasta"):
        (genome,) = files.read_fasta(shared_data / "sars_cov_2" / name).values()
        windowed, widths = _windowed_bpe_ids(yeast_bpe, genome, window=1000, overlap=100)
        assert len(widths) > 30 and np.array_equal(windowed, yeast_bpe._encode_whole(genome))


@pytest.mark.parametrize("case", ["homopolymer", "tandem", "n_run", "mixed"])
def test_windowed_bpe_ids_equal_a_whole_record_pass_on_adversarial_input(yeast_bpe, yeast_chromosome, case):
    """Runs that two windows tokenize in different phases (poly-A, tandem repeats) make the cut
    search widen; N runs are all one-base tokens. Small windows: dozens of cuts per input."""
    rng = np.random.default_rng(len(case))
    seq = {
        "homopolymer": "A" * 50000,
        "tandem": "GGTGTGGGTGTGTG" * 3000 + "AT" * 7001 + "CAG" * 4000,
        "n_run": yeast_chromosome[:3000] + "N" * 20000 + yeast_chromosome[3000:6000],
        "mixed": "".join(
            part
            for length in rng.integers(1, 4000, 40)
            for part in (
                yeast_chromosome[length : length + 300],
                "ACGTN"[length % 5] * int(length),
                "ACGTTG"[: 1 + length % 6] * int(length // 7),
            )
        ),
    }[case]
    whole = yeast_bpe._encode_whole(seq)
    for window, overlap in ((1000, 100), (777, 4), (5000, 1024)):
        windowed, widths = _windowed_bpe_ids(yeast_bpe, seq, window, overlap)
        assert len(widths) > 2 and np.array_equal(windowed, whole), (window, overlap)
    small = BPETokenizer(window=1000, overlap=100)  # encode_batch: a long row window by window too
    small._tokenizer = yeast_bpe._tokenizer
    assert small.encode_batch([seq, seq[:500]])["input_ids"][0, 1:-1].tolist() == whole.tolist()


@pytest.mark.parametrize("k, stride", [(6, 1), (6, 6), (5, 3), (3, 2)])
def test_kmer_ids_of_a_long_sequence_do_not_depend_on_the_block_size(k, stride):
    from vqdna.tokenizers import KmerTokenizer

    rng = np.random.default_rng(k + stride)
    for length in (3000, 3001, 3005):
        seq = "".join(rng.choice(list("ACGTN"), p=[0.24, 0.24, 0.24, 0.24, 0.04], size=length))
        whole = KmerTokenizer(k, stride)._encode_many([seq])[0]
        blocked = KmerTokenizer(k, stride)
        blocked.block = 100
        assert np.array_equal(blocked._encode(seq), whole)


def test_byte_positions_across_piece_boundaries(tmp_path):
    """A long line read in 1000-byte pieces: a bad byte and a valid two-byte character cut by a
    piece boundary are both placed where they are in the line."""
    bad = write(tmp_path / "bad.fa", b">x\n" + b"A" * 2500 + b"\xe9" + b"C" * 100 + b"\n")
    with pytest.raises(ValueError, match=re.escape(f"{bad} line 2: not UTF-8 text (byte 0xe9 at byte 2501")):
        list(files.stream_fasta(bad, chunk_chars=1000))
    cut = write(tmp_path / "cut.fa", b">x\n" + b"A" * 999 + "é".encode() + b"C" * 100 + b"\n")
    with pytest.raises(ValueError, match=re.escape(f"{cut} line 2: invalid character 'é' at position 1000")):
        list(files.stream_fasta(cut, chunk_chars=1000))
