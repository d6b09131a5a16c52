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
        suites.prepare_task(wildcards.suite, wildcards.task, config, output[0], log=log[0])


rule corpus:
    """Pre-training windows from the embedded multi-species genomes, with a provenance manifest."""
    output:
        train=f"{W}/corpus/train.txt",
        val=f"{W}/corpus/val.txt",
        manifest=f"{W}/corpus/manifest.json",
    log:
        f"{W}/logs/corpus.log",
    resources:
        **job_resources("light"),
    run:
        from vqdna import corpus

        corpus.write_corpus(config, output.train, output.val, output.manifest)
