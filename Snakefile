# vqdna: the whole study as parameterised, rendered notebooks.  `snakemake --cores all`
# Rules live in rules/*.smk; configuration in config/config.yaml (validated by config/schema.yaml).
from snakemake.utils import min_version, validate

import vqdna.core.numerics  # before validate(): skips a slow optional jsonschema import (vqdna/__init__.py)

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "config/schema.yaml")
# Portable numerics (vqdna/core/numerics.py): set here, before any job starts, so that every job's
# shell, notebook runner and kernel inherits the same kernel choices whatever the CPU vendor.
vqdna.core.numerics.apply(config["numerics"])


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/tokenizers.smk"
include: "rules/models.smk"
include: "rules/summary.smk"
include: "rules/analysis.smk"


rule all:
    input:
        all_targets(),
    default_target: True


# A resources entry must name a rule of this workflow (yours included) or `default`: a typo would
# otherwise leave that rule at the defaults without a word.
unknown = sorted(set(config.get("resources", {})) - {"default"} - {r.name for r in workflow.rules})
if unknown:
    raise ValueError(f"config resources: {unknown} name no rule of this workflow; rules: "
                     f"{sorted(r.name for r in workflow.rules)}")
