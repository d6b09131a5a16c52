"""Building one task of a benchmark suite into its prepared-task folder (the job behind
``data/<suite>/<task>/``): the format's builder reads the input files, then the config's
policies apply (``max_length``, ``max_train`` / ``max_dev`` subsampling, label checks) and
``meta.json`` records the protocol, the paper's numbers, the source and every deviation.
"""

from __future__ import annotations

from pathlib import Path

from vqdna.data import annotation, splitting, suites, tasks

DEFAULT_FRACTIONS = {"train": 0.8, "dev": 0.1, "test": 0.1}


def prepare_task(suite: str, task: str, config: dict, out_dir) -> Path:
    """Build one task into the prepared-task folder ``out_dir`` (see docs/design.md), atomically.

    Applies the input policy, ``max_length`` (error unless ``truncate``), ``max_train`` and the
    label checks; ``meta.json`` records the protocol, paper numbers, source and every deviation.
    """
    definition = suites.load_suites(config.get("data", {}).get("benchmarks_dir"))[suite]
    options = suites.suite_options(config, suite)
    spec = suites.merge(definition["tasks"][task], {"params": options.get("task_params", {}).get(task, {})})
    seed = int(config.get("data", {}).get("seed", 0))
    root = suites.data_folder(config, definition)
    built = BUILDERS[spec["format"]](spec["params"], root, options, seed)
    splits, deviations = built["splits"], list(built.get("deviations", []))
    max_length = spec.get("max_length") or max(int(s["sequence"].str.len().max()) for s in splits.values())
    deviations += splitting.apply_max_length(
        splits, max_length, options.get("truncate", False), f"{suite}/{task} "
    )
    deviations += splitting.subsample_split(splits, options.get("max_train"), seed)
    notes = splitting.subsample_split(splits, options.get("max_dev"), seed, split="dev")
    num_classes = splitting.check_labels(
        splits, spec.get("num_classes"), where=_sources(spec, root, suite, task)
    )
    splits = splitting.drop_source(splits)
    meta = {
        "suite": suite,
        "task": task,
        "num_classes": num_classes,
        "label_names": spec.get("label_names")
        or built.get("label_names")
        or [str(i) for i in range(num_classes)],
        "metric": spec["metric"],
        "max_length": int(max_length),
        "protocol": spec.get("protocol", {}),
        "coverage_bp": spec.get("coverage_bp"),
        "mode": "reduced-train" if any(d.startswith("reduced-train") for d in deviations) else "full",
        "deviations": deviations,
        "notes": notes,
        "paper": spec.get("paper", {}),
        "paper_units": definition.get("paper_units"),
        "official_rows": spec.get("official_rows"),
        "label_source": definition.get("label_source"),
        "description": spec.get("description", definition.get("description")),
        "source": {
            "format": spec["format"],
            "location": str(root) if root else None,
            "params": spec["params"],
            "seed": seed,
            **built.get("source", {}),
        },
    }
    return tasks.write_task(out_dir, splits, meta)


def _sources(spec: dict, root, suite: str, task: str) -> str:
    """``suite/task (input files)``: what a label or split error is about."""
    params = spec.get("params", {})
    if spec["format"] == "gue_csv":
        files = [Path(root) / params["path"]]
    else:
        files = [Path(root) / params[key] for key in ("fasta", "labels", "path") if key in params]
        files += [Path(root) / f for f in params.get("files", [])]
    return f"{suite}/{task} ({', '.join(map(str, files)) or 'embedded genomes'})"


def _build_gue_csv(params, root, options, seed):
    splits, deviations = tasks.load_gue_task(
        root / params["path"],
        options.get("reduced_train", False),
        options.get("reduced_dev_fraction", 0.1),
        seed,
        keep_source=True,
    )
    return {"splits": splits, "deviations": deviations}


def _build_fasta_classes(params, root, options, seed):
    splits = tasks.fasta_classes_task(
        [root / f for f in params["files"]],
        params.get("fractions", DEFAULT_FRACTIONS),
        seed,
        params.get("unique_ids", True),
        keep_source=True,
    )
    return {"splits": splits}


def _build_csv_table(params, root, options, seed):
    splits = tasks.csv_table_task(
        root / params["path"],
        params.get("sequence_col", "sequence"),
        params.get("label_col", "label"),
        params.get("fractions", DEFAULT_FRACTIONS),
        seed,
        keep_source=True,
    )
    return {"splits": splits}


def _build_genome_fragments(params, root, options, seed):
    splits, label_names, genomes = tasks.genome_fragments_task(
        root / params["fasta"],
        root / params["labels"],
        params.get("name_col", "name"),
        params.get("label_col", "label"),
        params["fragment_length"],
        params["min_genomes"],
        params.get("fractions", DEFAULT_FRACTIONS),
        seed,
        params.get("max_n_fraction", 0.0),
        params.get("fragments_per_genome"),
    )
    return {"splits": splits, "label_names": label_names, "source": {"genomes": genomes}}


def _build_annotation(params, root, options, seed):
    splits, label_names, provenance = annotation.annotation_task(seed=seed, **params)
    return {"splits": splits, "label_names": label_names, "source": provenance}


#: the builder of each format (the ``params`` each reads, with their types: suite_schema.FORMAT_PARAMS)
BUILDERS = {
    "gue_csv": _build_gue_csv,
    "fasta_classes": _build_fasta_classes,
    "csv_table": _build_csv_table,
    "genome_fragments": _build_genome_fragments,
    "annotation": _build_annotation,
}
