# Data: prepared labelled tasks (benchmarks/*.yaml) and the pre-training corpus.


rule prepare_task:
    """One labelled task -> train/dev/test.csv + meta.json (written atomically)."""
    output:
        directory(f"{W}/data/{{suite}}/{{task}}"),
    log:
        f"{W}/logs/data/{{suite}}/{{task}}.log",
    resources:
        **job_resources("light"),
    run:
        suites.prepare_task(wildcards.suite, wildcards.task, config, output[0])


rule corpus:
    """Pre-training windows from the embedded multi-species genomes (plus any extra FASTA),
    with a provenance manifest."""
    output:
        directory(f"{W}/corpus"),
    log:
        f"{W}/logs/corpus.log",
    params:
        corpus=config["corpus"],
        seed=config["data"].get("seed", 0),
    resources:
        **job_resources("light"),
    run:
        from vqdna import corpus

        sources = corpus.embedded_genomes() + list(params.corpus.get("extra_fasta", []))
        corpus.write_corpus(
            sources,
            output[0],
            length=params.corpus["window"],
            max_windows=params.corpus["max_windows"],
            max_n_fraction=params.corpus.get("max_n_fraction", 0.01),
            val_fraction=params.corpus.get("val_fraction", 0.1),
            seed=params.seed,
        )
