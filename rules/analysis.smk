# The paper's analyses beyond the main table: ablation runs (gathered by the summary notebook)
# and the SARS-CoV-2 mutation study (paper Fig. 5).


rule sarscov2:
    input:
        notebook="notebooks/sarscov2.py",
        tokenizers=[tokenizer_dir(t) for t in config["sarscov2"]["tokenizers"]],
    output:
        metrics=f"{W}/sarscov2/metrics.json",
        umap=report(f"{W}/sarscov2/umap.png", category="SARS-CoV-2"),
        notebook=f"{W}/sarscov2/sarscov2.ipynb",
        html=report(f"{W}/sarscov2/sarscov2.html", category="Notebooks"),
    params:
        settings=config["sarscov2"],
        nb=lambda wc, input, output, threads: nb_params(
            data_dir=str(sarscov2_dir()),
            tokenizer_names=config["sarscov2"]["tokenizers"],
            tokenizer_paths=list(input.tokenizers),
            trusted_classes=study.trusted_classes(config),
            n_genomes=config["sarscov2"]["n_genomes"],
            out_dir=f"{W}/sarscov2",
            metrics_path=output.metrics,
            seed=0,
            threads=threads,
        ),
    conda:
        "../environment.yml"
    log:
        f"{W}/logs/sarscov2.log",
    benchmark:
        f"{W}/timings/sarscov2.tsv"
    threads: workflow.resource_settings.cores or 1  # all cores given; 1 without --cores (--report)
    resources:
        **job_resources("sarscov2"),
    shell:
        RUN_NOTEBOOK
