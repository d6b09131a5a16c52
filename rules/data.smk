# Data: prepared labelled tasks (benchmarks/*.yaml) and the pre-training corpus.


rule prepare_task:
    """One labelled task -> train/dev/test.csv + meta.json (written atomically)."""
    output:
        directory(f"{W}/data/{{suite}}/{{task}}"),
    log:
        f"{W}/logs/data/{{suite}}/{{task}}.log",
    resources:
        **job_resources("prepare_task"),
    run:
        logged(log[0], prepare.prepare_task, wildcards.suite, wildcards.task, config, output[0])


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
        **job_resources("corpus"),
    run:
        logged(log[0], corpus.build_corpus, params.corpus, output[0], seed=params.seed)


rule download_gue:
    """Online users: `snakemake --cores 1 download_gue` with data.gue_download.sha256 in the config.
    Fetches the official GUE archive into data.gue_dir, checks its sha256 and unpacks it; offline
    it fails at once, saying where to put the files (vqdna.data.gue.download_gue)."""
    output:
        touch(f"{W}/logs/gue_download.done"),
    log:
        f"{W}/logs/gue_download.log",
    resources:
        **job_resources("download_gue"),
    run:
        logged(log[0], gue.download_gue, config)
