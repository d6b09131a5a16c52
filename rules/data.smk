# Data: prepared labelled tasks (benchmarks/*.yaml) and the pre-training corpus.


rule prepare_task:
    """One labelled task -> train/dev/test.csv + meta.json (written atomically)."""
    output:
        directory(f"{W}/data/{{suite}}/{{task}}"),
    conda:
        "../environment.yml"
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
    conda:
        "../environment.yml"
    log:
        f"{W}/logs/corpus.log",
    params:
        corpus=config["corpus"],
        seed=config["data"].get("seed", 0),
    resources:
        **job_resources("light"),
    run:
        stages.build_corpus(params.corpus, output[0], seed=params.seed)
