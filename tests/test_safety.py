"""No code runs from data: checkpoints load with ``weights_only=True``, a saved tokenizer folder's
own class is imported only with ``trust_remote_code`` (and never from inside the folder), and the
tokenizer registry cannot be hijacked. Each attack leaves a marker file if anything of it ran."""

import json
import os
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vqdna.model.checkpoint import load_checkpoint
from vqdna.model.vqvae import VQVAE, VQVAEConfig
from vqdna.tokenizers import (
    TOKENIZERS,
    CharTokenizer,
    CodebookTokenizer,
    KmerTokenizer,
    Tokenizer,
    build_tokenizer,
    load_tokenizer,
    tokenizer_class,
)
from vqdna.train import scale, stages

SMALL_VQ = {"type": "vq", "stem_dim": 8, "dim": 8, "depth": 1, "codebook_size": 4, "levels": 1}


class _Exec:
    """Unpickling this runs ``exec(code)``: what a hostile checkpoint does."""

    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


class _System:
    """Unpickling this runs a shell command."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _payloads(marker: Path) -> dict:
    return {
        "exec": _Exec(f"open({str(marker)!r}, 'w').write('ran')"),
        "os.system": _System(f"touch {marker}"),
        "numpy global": np.arange(3),  # harmless, but still a pickled global: refused too
    }


def _hostile(path: Path, payload, **extra) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}, "fingerprint": {}, "config": payload, **extra}, path)
    return path


def _vq_folder(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    folder = CodebookTokenizer(VQVAE(VQVAEConfig.from_spec(SMALL_VQ)), name="vq").save_pretrained(
        tmp_path / "vq"
    )
    return folder


LOADERS = {
    "VQVAE.load (vqvae.pt)": lambda path: VQVAE.load(path),
    "load_checkpoint": lambda path: load_checkpoint(path),
    "load_resume (resume.pt)": lambda path: scale.load_resume(path, {"steps": 1}),
    "load_encoder (encoder checkpoint)": lambda path: stages.load_encoder(path, CharTokenizer()),
    "pretrain_deviations (encoder checkpoint)": lambda path: stages.pretrain_deviations(path),
}


@pytest.mark.parametrize("payload", ["exec", "os.system", "numpy global"])
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_a_pickled_payload_in_a_checkpoint_is_refused_and_never_runs(tmp_path, loader, payload):
    marker = tmp_path / "marker"
    path = _hostile(tmp_path / "model.pt", _payloads(marker)[payload])
    with pytest.raises(ValueError) as error:
        LOADERS[loader](path)
    assert str(path) in str(error.value) and "nothing was run" in str(error.value)
    assert not marker.exists()


@pytest.mark.parametrize("payload", ["exec", "os.system"])
def test_a_pickled_payload_in_a_saved_vq_tokenizer_is_refused_and_never_runs(tmp_path, payload):
    folder = _vq_folder(tmp_path)
    marker = tmp_path / "marker"
    _hostile(folder / "vqvae.pt", _payloads(marker)[payload])
    with pytest.raises(ValueError, match="vqvae.pt.*refused to load"):
        load_tokenizer(folder)
    with pytest.raises(ValueError, match="refused to load"):
        Tokenizer.from_pretrained(folder, trust_remote_code=True)  # the flag is about classes, not pickles
    assert not marker.exists()


def test_an_old_format_resume_checkpoint_is_refused_naming_the_file(tmp_path):
    """Resume checkpoints written before weights_only held numpy's RNG state as an ndarray:
    refused with the file named, never unpickled."""
    path = tmp_path / "resume.pt"
    torch.save({"fingerprint": {"steps": 1}, "rng": [{"numpy": np.random.get_state()}]}, path)
    with pytest.raises(ValueError, match=f"{path}: refused to load this resume checkpoint"):
        scale.load_resume(path, {"steps": 1})


def test_resume_state_is_plain_and_round_trips_every_generator_exactly(tmp_path):
    generator = torch.Generator().manual_seed(3)
    random.seed(1)
    np.random.seed(2)
    np.random.standard_normal()  # a cached gaussian is part of numpy's state too
    states = scale.rng_states(generator)
    path = tmp_path / "resume.pt"
    scale.save_resume(path, fingerprint={"steps": 2}, step=1, rng=[states])

    def draws():
        return (
            random.random(),
            np.random.standard_normal(3),
            torch.rand(2),
            torch.rand(2, generator=generator),
        )

    expected = draws()
    random.seed(9), np.random.seed(9), torch.manual_seed(9), generator.manual_seed(9)
    loaded = torch.load(path, weights_only=True)  # plain values and tensors only
    scale.set_rng_states(scale.load_resume(path, {"steps": 2})["rng"][0], generator)
    again = draws()
    assert loaded["step"] == 1 and expected[0] == again[0]
    assert np.array_equal(expected[1], again[1])
    assert torch.equal(expected[2], again[2]) and torch.equal(expected[3], again[3])


def test_checkpoints_this_project_writes_load_with_weights_only(tmp_path):
    model = VQVAE(VQVAEConfig.from_spec(SMALL_VQ))
    model.save(tmp_path / "vqvae.pt")
    assert torch.load(tmp_path / "vqvae.pt", weights_only=True)["config"]["dim"] == 8
    assert VQVAE.load(tmp_path / "vqvae.pt").config.dim == 8
    with pytest.raises(ValueError, match="no state_dict"):
        torch.save({"weights": {}}, tmp_path / "other.pt")
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="no fingerprint"):
        torch.save({"step": 1}, tmp_path / "resume.pt")
        scale.load_resume(tmp_path / "resume.pt", {"steps": 1})


# ---------------------------------------------------------------- classes named by a folder


def _evil_module(root: Path, name: str, marker: Path) -> None:
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from vqdna.tokenizers import CharTokenizer\n\n\n"
        "class Evil(CharTokenizer):\n    name = 'evil'\n"
    )


def _config(folder: Path, cls: str, name: str = "evil") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer_config.json").write_text(json.dumps({"name": name, "params": {}, "class": cls}))
    return folder / "tokenizer_config.json"


@pytest.mark.parametrize("load", ["load_tokenizer", "from_pretrained"])
def test_a_folder_naming_a_class_of_its_own_needs_trust_remote_code(tmp_path, monkeypatch, load):
    marker = tmp_path / "marker"
    _evil_module(tmp_path / "modules", "evil_tokenizers", marker)
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))
    file = _config(tmp_path / "folder", "evil_tokenizers:Evil")
    loader = load_tokenizer if load == "load_tokenizer" else Tokenizer.from_pretrained
    with pytest.raises(ValueError) as error:
        loader(tmp_path / "folder")
    message = str(error.value)
    assert str(file) in message and "'evil_tokenizers:Evil'" in message and "trust_remote_code" in message
    assert not marker.exists() and "evil_tokenizers" not in sys.modules


def test_trust_remote_code_for_another_class_still_refuses(tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    _evil_module(tmp_path / "modules", "evil_other", marker)
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))
    _config(tmp_path / "folder", "evil_other:Evil")
    for trusted in ("my_tokenizers:PurinePyrimidine", ["my_tokenizers:PurinePyrimidine"], [], False, None):
        with pytest.raises(ValueError, match="trust_remote_code"):
            load_tokenizer(tmp_path / "folder", trust_remote_code=trusted)
    assert not marker.exists()


@pytest.mark.parametrize("trust", [False, True, "evilpkg:Evil", ["evilpkg:Evil"]])
def test_a_folder_that_is_a_package_naming_itself_never_runs(tmp_path, monkeypatch, trust):
    """The cwd-on-sys.path trick: a tokenizer folder ``evilpkg/`` holding ``__init__.py`` and a
    config naming ``evilpkg:Evil`` would import itself from the working directory. Refused
    without trust, and with it too: a folder's own code is never imported."""
    marker = tmp_path / "marker"
    _evil_module(tmp_path, "evilpkg", marker)
    file = _config(tmp_path / "evilpkg", "evilpkg:Evil")
    monkeypatch.syspath_prepend(str(tmp_path))  # as '' (the working directory) would be
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as error:
        load_tokenizer("evilpkg", trust_remote_code=trust)
    assert "tokenizer_config.json" in str(error.value) and "evilpkg:Evil" in str(error.value)
    assert ("inside the tokenizer folder" in str(error.value)) == bool(trust)
    assert not marker.exists() and "evilpkg" not in sys.modules
    assert file.exists()


def test_a_module_inside_the_folder_is_refused_even_when_trusted(tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    _evil_module(tmp_path / "folder", "inner_evil", marker)
    _config(tmp_path / "folder", "inner_evil:Evil")
    monkeypatch.syspath_prepend(str(tmp_path / "folder"))
    with pytest.raises(ValueError, match="inside the tokenizer folder"):
        load_tokenizer(tmp_path / "folder", trust_remote_code=True)
    assert not marker.exists()


def test_a_trusted_class_outside_the_folder_loads(tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    _evil_module(tmp_path / "modules", "fine_tokenizers", marker)
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))
    _config(tmp_path / "folder", "fine_tokenizers:Evil")
    tokenizer = load_tokenizer(tmp_path / "folder", trust_remote_code="fine_tokenizers:Evil")
    assert type(tokenizer).__name__ == "Evil" and tokenizer.encode("AC") == [2, 5, 6, 3]
    assert marker.exists()  # trusted: its module ran, as asked


@pytest.mark.parametrize(
    "name, cls",
    [
        ("char", "evil_shadow:Evil"),  # a built-in name wins: its class string is never imported
        ("kmer_like", "vqdna.tokenizers.char:CharTokenizer"),  # a built-in class: nothing to import
    ],
)
def test_built_in_types_load_without_importing_anything(tmp_path, monkeypatch, name, cls):
    marker = tmp_path / "marker"
    _evil_module(tmp_path / "modules", "evil_shadow", marker)
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))
    _config(tmp_path / "folder", cls, name=name)
    assert isinstance(load_tokenizer(tmp_path / "folder"), CharTokenizer)
    assert not marker.exists()


@pytest.mark.parametrize("cls", ["evil", "a:b:c", "1module:Class", "module:Class.attr", "os.path:"])
def test_a_malformed_class_name_is_refused(tmp_path, cls):
    _config(tmp_path / "folder", cls)
    with pytest.raises(ValueError, match="module:Class|trust_remote_code"):
        load_tokenizer(tmp_path / "folder", trust_remote_code=True)


# ---------------------------------------------------------------- the registry


def test_a_subclass_cannot_hijack_a_built_in_type():
    with pytest.raises(TypeError, match="'char' is already taken by vqdna.tokenizers.char:CharTokenizer"):

        class Hijack(CharTokenizer):
            config_types = ("char",)

    assert TOKENIZERS["char"] is CharTokenizer


def test_a_new_class_cannot_take_a_built_in_type_and_registers_nothing():
    with pytest.raises(TypeError, match="'kmer' is already taken"):

        class Takeover(CharTokenizer):
            config_types = ("brand_new_type", "kmer")

    assert TOKENIZERS["kmer"] is KmerTokenizer and "brand_new_type" not in TOKENIZERS


@pytest.mark.parametrize("kinds", ["char2", ("",), (3,), ("a:b",)])
def test_config_types_must_be_a_tuple_of_names(kinds):
    with pytest.raises(TypeError, match="config_types|may not contain"):

        class Odd(CharTokenizer):
            config_types = kinds

    assert not {"char2", "", 3, "a:b"} & set(TOKENIZERS)


def test_an_abstract_class_cannot_register():
    with pytest.raises(TypeError, match="abstract.*_encode"):

        class Half(Tokenizer):
            config_types = ("half",)
            name = "half"

    assert "half" not in TOKENIZERS


@pytest.mark.parametrize("kind", ["vqdna.tokenizers:Tokenizer", "vqdna.tokenizers.base:Tokenizer"])
def test_tokenizer_itself_is_refused_as_a_type(kind):
    with pytest.raises(ValueError, match="abstract"):
        tokenizer_class(kind)


def test_a_new_type_registers_and_a_subclass_without_types_stays_out():
    class Fresh(CharTokenizer):
        config_types = ("test_safety_fresh",)

    class Child(Fresh):
        pass

    try:
        assert TOKENIZERS["test_safety_fresh"] is Fresh and Child not in TOKENIZERS.values()
    finally:
        del TOKENIZERS["test_safety_fresh"]


# ---------------------------------------------------------------- saved parameters


def _saved(tmp_path, tokenizer, **params) -> Path:
    folder = tokenizer.save_pretrained(tmp_path / "tok")
    file = folder / "tokenizer_config.json"
    config = json.loads(file.read_text())
    config["params"].update(params)
    file.write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(
    "params, key",
    [
        ({"k": 6.5}, "k"),
        ({"k": "6"}, "k"),
        ({"k": True}, "k"),
        ({"k": 0}, "k"),
        ({"k": 13}, "k"),
        ({"stride": 0}, "stride"),
        ({"stride": 1.5}, "stride"),
        ({"stride": 7}, "stride"),
    ],
)
def test_kmer_folder_parameters_are_checked_naming_the_file(tmp_path, params, key):
    folder = _saved(tmp_path, KmerTokenizer(k=6, stride=1), **params)
    with pytest.raises(ValueError, match=rf"tokenizer_config.json: params .*\b{key} must be"):
        load_tokenizer(folder)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, "256", None])
def test_codebook_folder_batch_size_is_checked_naming_the_file(tmp_path, batch_size):
    folder = _vq_folder(tmp_path)
    file = folder / "tokenizer_config.json"
    config = json.loads(file.read_text())
    config["params"]["batch_size"] = batch_size
    file.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=rf"{file}: params .*batch_size must be"):
        load_tokenizer(folder)


@pytest.mark.parametrize("params", [{"vocab_size": "64"}, {"vocab_size": 0}, {"min_frequency": 1.5}])
def test_bpe_parameters_are_checked(params):
    with pytest.raises(ValueError, match="must be"):
        build_tokenizer("bpe", **{"vocab_size": 64, **params})
