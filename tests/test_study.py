"""The study plan: tokenizer / model / ablation variants expand as the config says."""

import copy
from pathlib import Path

import pytest
import yaml

from vqdna.core.protocol import deviation_tags
from vqdna.workflow import study
from vqdna.workflow.records import ablation_of

CONFIG = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())


def with_ablations(**knobs):
    config = copy.deepcopy(CONFIG)
    config["ablations"] = {"enabled": True, "tokenizers": ["vq", "hrq"], **knobs}
    return config


def test_compared_models_are_the_config_tokenizers_and_nothing_else_without_ablations():
    assert study.compared_models(CONFIG) == list(CONFIG["tokenizers"])
    assert study.ablation_runs(CONFIG) == []
    assert study.all_tokenizers(CONFIG) == list(CONFIG["tokenizers"])


def test_compared_narrows_the_main_comparison_and_refuses_unknown_names():
    config = {**CONFIG, "compared": ["vq", "hrq"]}
    assert study.compared_models(config) == ["vq", "hrq"]
    with pytest.raises(KeyError, match="kmer7"):
        study.compared_models({**CONFIG, "compared": ["kmer7"]})


def test_ablation_replicates_per_knob_and_tokenizer_seeds_apart():
    config = with_ablations(
        replicates=[0], knob_replicates={"mask_ratio": [0, 1, 2]}, tokenizer_replicates=[0, 1]
    )
    assert study.ablation_replicates(config, "stride") == [0]
    assert study.ablation_replicates(config, "mask_ratio") == [0, 1, 2]
    assert study.ablation_tokenizer_replicates(config) == [0, 1]
    assert study.ablation_tokenizer_replicates(with_ablations(replicates=[2])) == [2]
    assert study.ablation_replicates(with_ablations()) == [0]  # the first full-pipeline replicate


def test_tokenizer_spec_merges_vqvae_defaults_and_applies_the_override():
    spec = study.tokenizer_spec(CONFIG, "hrq~codebook_size=128")
    assert spec["type"] == "hrq" and spec["levels"] == 2 and spec["codebook_size"] == 128
    assert spec["dim"] == CONFIG["vqvae"]["dim"]
    assert study.tokenizer_spec(CONFIG, "vq~ema=false")["ema"] is False
    assert study.tokenizer_spec(CONFIG, "kmer6") == CONFIG["tokenizers"]["kmer6"]
    with pytest.raises(KeyError, match="unknown tokenizer"):
        study.tokenizer_spec(CONFIG, "nope")
    with pytest.raises(KeyError, match="not a tokenizer ablation"):
        study.tokenizer_spec(CONFIG, "hrq~epochs=3")
    # every HRQ level taps its own encoder block: a deeper levels variant gets the blocks it needs
    depth = CONFIG["vqvae"]["depth"]
    deep = study.tokenizer_spec(CONFIG, f"hrq~levels={depth + 1}")
    assert deep["levels"] == deep["depth"] == depth + 1
    assert study.tokenizer_spec(CONFIG, "hrq~levels=1")["depth"] == depth
    shallow = copy.deepcopy(CONFIG)
    shallow["tokenizers"]["hrq"]["levels"] = depth + 1  # a plain config entry is not fixed up
    with pytest.raises(ValueError, match="levels"):
        study.tokenizer_spec(shallow, "hrq")


def test_mask_ratio_variants_reuse_the_base_tokenizer():
    spec = study.model_spec(CONFIG, "hrq~mask_ratio=0.15")
    assert spec["tokenizer"] == "hrq" and spec["pretrain"]["mask_ratio"] == 0.15
    assert study.model_spec(CONFIG, "hrq~stride=2")["tokenizer"] == "hrq~stride=2"


def test_ablation_runs_expand_each_knob_and_map_the_default_value_to_the_base_model():
    default_k = CONFIG["vqvae"]["codebook_size"]
    config = with_ablations(
        codebook_size=[default_k // 2, default_k], levels=[1, 2, 3], mask_ratio=[0.15, 0.25]
    )
    runs = study.ablation_runs(config)
    by_key = {(r["tokenizer_base"], r["ablation"], r["value"]): r for r in runs}
    assert by_key[("hrq", "codebook_size", default_k)]["model"] == "hrq"  # the default is the base run
    assert by_key[("hrq", "codebook_size", default_k // 2)]["model"] == f"hrq~codebook_size={default_k // 2}"
    assert ("vq", "levels", 3) not in by_key  # levels applies to HRQ only
    assert by_key[("hrq", "levels", 1)]["model"] == "hrq~levels=1"
    assert by_key[("vq", "mask_ratio", 0.15)]["tokenizer"] == "vq"
    assert len(runs) == 2 * 2 + 3 + 2 * 2
    # every ablation tokenizer is trained once, whatever number of runs use it
    assert len(study.all_tokenizers(config)) == len(set(study.all_tokenizers(config)))


def test_code_dim_default_null_means_dim():
    config = with_ablations(code_dim=[CONFIG["vqvae"]["dim"], 2 * CONFIG["vqvae"]["dim"]])
    assert [r["model"] for r in study.ablation_runs(config) if r["tokenizer_base"] == "vq"] == [
        "vq",
        f"vq~code_dim={2 * CONFIG['vqvae']['dim']}",
    ]


def test_records_name_their_ablation():
    assert ablation_of("hrq") is None
    assert ablation_of("hrq~stride=4") == {"name": "stride", "value": 4}
    assert ablation_of("vq~ema=false") == {"name": "ema", "value": False}


def test_data_notes_become_shared_protocol_categories():
    notes = [
        "train subsampled to 1500 of 4904 (stratified, seed 0)",
        "reduced-train: official train.csv absent",
    ]
    assert deviation_tags(notes) == ["reduced-train", "train subsampled"]


def test_same_knob_value_keeps_booleans_and_numbers_apart():
    import numpy as np

    from vqdna.workflow.study import same_knob_value

    assert same_knob_value(64, 64.0) and same_knob_value(0.15, 0.15) and not same_knob_value(64, 128)
    assert same_knob_value(True, np.bool_(True)) and not same_knob_value(True, False)
    assert not same_knob_value(True, 1) and not same_knob_value(0, False)  # a switch is not a size
    assert not same_knob_value(None, 64) and not same_knob_value(64, None)
