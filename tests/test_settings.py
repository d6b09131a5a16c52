"""Typed settings: strict keys, and defaults that are the config's own values."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from vqdna.core.settings import SECTIONS, CorpusConfig, FinetuneConfig, ProbeConfig

CONFIG = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_defaults_are_the_configs_values(section):
    """An omitted key means what config/config.yaml says, never a different code fallback; every
    key the config sets is a field, and the section validates as a whole."""
    cls = SECTIONS[section]
    defaults = dataclasses.asdict(cls())
    assert set(CONFIG[section]) <= set(defaults)
    assert {k: defaults[k] for k in CONFIG[section]} == CONFIG[section]
    assert cls.from_dict(CONFIG[section]) == cls()


def test_unknown_keys_are_named():
    with pytest.raises(ValueError, match=r"FinetuneConfig: unknown setting\(s\) \['epoch'\]"):
        FinetuneConfig.from_dict({"epoch": 3})
    assert ProbeConfig.from_dict({"max_bp": 64}).pooling == "fixed"
    assert CorpusConfig.from_dict(None).val_fraction == 0.2  # the held-out share that keeps test rows out
