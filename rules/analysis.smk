# The paper's analyses beyond the main table: ablation runs (gathered by the summary notebook)
# and the SARS-CoV-2 mutation study (paper Fig. 5).


def ablation_metrics():
    """Metrics files of every ablation run (empty when ablations are off)."""
    if not ABLATION_RUNS:
        return []
    probe_task = [tuple(config["ablations"]["probe_task"].split("/"))]
    finetune_tasks = [tuple(t.split("/")) for t in config["ablations"]["finetune_tasks"]]
    paths = []
    for run in ABLATION_RUNS:
        paths += tokenizer_metrics([run["tokenizer"]])
        if run["ablation"] in study.PRETRAIN_ABLATIONS:
            paths += finetune_metrics([run["model"]], finetune_tasks)
        else:
            paths += probe_metrics([run["model"]], probe_task)
    return sorted(set(paths))


def sarscov2_enabled():
    from pathlib import Path

    return config["sarscov2"]["enabled"] and sarscov2_dir().is_dir()


def sarscov2_dir():
    from pathlib import Path

    return Path(config["data"].get("shared_dir") or "") / "sars_cov_2"


rule sarscov2:
    input:
        notebook="notebooks/sarscov2.py",
        tokenizers=[tokenizer_dir(t) for t in config["sarscov2"]["tokenizers"]],
    output:
        metrics=f"{W}/sarscov2/metrics.json",
        notebook=f"{W}/sarscov2/sarscov2.ipynb",
        html=f"{W}/sarscov2/sarscov2.html",
    params:
        nb=lambda wc, input, output, threads: nb_params(
            data_dir=str(sarscov2_dir()),
            tokenizer_names=config["sarscov2"]["tokenizers"],
            tokenizer_paths=list(input.tokenizers),
            n_genomes=config["sarscov2"]["n_genomes"],
            out_dir=f"{W}/sarscov2",
            metrics_path=output.metrics,
            seed=0,
            threads=threads,
        ),
    log:
        f"{W}/logs/sarscov2.log",
    benchmark:
        f"{W}/benchmarks/sarscov2.tsv"
    threads: workflow.cores
    resources:
        **job_resources("train"),
    shell:
        RUN_NOTEBOOK
