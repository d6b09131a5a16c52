# Stage 5-6: gather every metrics JSON into the results tables, figures, statistics and claim
# verdicts (summary notebook), and the efficiency table (paper Table 2 columns).
S = f"{W}/summary"


rule summary:
    input:
        notebook="notebooks/summary.py",
        finetune=finetune_metrics(),
        probe=probe_metrics(),
        baseline=baseline_metrics(),
        tokenizers=tokenizer_metrics(),
        pretrain=pretrain_metrics(),
        ablations=lambda wc: ablation_metrics(),
    output:
        table=report(f"{S}/results.csv", category="Results"),
        markdown=f"{S}/results.md",
        notebook=f"{S}/summary.ipynb",
        html=report(f"{S}/summary.html", category="Notebooks"),
        **{name: report(path, category="Results") if path.endswith(".png") else path
           for name, path in summary_outputs().items()},
    params:
        settings={"ablations": ABLATION_RUNS, "profile": config["profile"]},
        nb=lambda wc, input, output: nb_params(
            metrics_paths=list(input.finetune) + list(input.probe) + list(input.baseline)
            + list(input.tokenizers) + list(input.pretrain) + list(input.ablations),
            ablation_runs=ABLATION_RUNS,
            out_dir=S,
            profile=config["profile"],
        ),
    conda:
        "../environment.yml"
    log:
        f"{W}/logs/summary.log",
    resources:
        **job_resources("summary"),
    shell:
        RUN_NOTEBOOK


rule efficiency:
    input:
        notebook="notebooks/efficiency.py",
        models=[f"{W}/models/{m}/rep{REPLICATES[0]}/model.pt" for m in MODELS],
        tokenizers=[tokenizer_dir(study.model_spec(config, m)["tokenizer"], REPLICATES[0]) for m in MODELS],
        corpus=rules.corpus.output[0],
    output:
        table=report(f"{S}/efficiency.csv", category="Efficiency"),
        markdown=f"{S}/efficiency.md",
        conventions=f"{S}/efficiency_conventions.csv",
        conventions_markdown=f"{S}/efficiency_conventions.md",
        figure=report(f"{S}/figures/efficiency.png", category="Efficiency"),
        notebook=f"{S}/efficiency.ipynb",
        html=report(f"{S}/efficiency.html", category="Notebooks"),
    params:
        settings=config["encoder"],
        nb=lambda wc, input, output, threads: nb_params(
            models=MODELS,
            model_paths=list(input.models),
            tokenizer_paths=list(input.tokenizers),
            trusted_classes=study.trusted_classes(config),
            val_path=f"{input.corpus}/val.txt",
            encoder=config["encoder"],
            seq_len=512,
            out_dir=S,
            threads=threads,
            profile=config["profile"],
        ),
    conda:
        "../environment.yml"
    log:
        f"{W}/logs/efficiency.log",
    benchmark:
        f"{W}/timings/efficiency.tsv"
    threads: workflow.resource_settings.cores or 1  # all cores given; 1 without --cores (--report)
    resources:
        **job_resources("efficiency"),
    shell:
        RUN_NOTEBOOK


rule index:
    """results/index.md: links to the tables, figures and every rendered notebook."""
    input:
        summary=rules.summary.output.html,
        efficiency=rules.efficiency.output.html,
        sarscov2=lambda wc: rules.sarscov2.output.html if sarscov2_enabled() else [],
    output:
        f"{W}/index.md",
    log:
        f"{W}/logs/index.log",
    resources:
        **job_resources("index"),
    run:
        logged(log[0], pages.write_index, W, output[0], config["profile"])


rule provenance:
    """What made this run: commit, config hash, library versions, machine (vqdna.analysis.provenance)."""
    input:
        rules.index.output,
    output:
        f"{W}/provenance.json",
    params:
        config=shlex.quote(json.dumps(config, default=str)),
    log:
        f"{W}/logs/provenance.log",
    conda:
        "../environment.yml"
    shell:
        "python -m vqdna.analysis.reference provenance {output} --config {params.config} > {log} 2>&1"


rule compare:
    """Every metrics JSON of this run against the tracked reference of its profile, field by
    field (timings aside): compare.md says which are identical (python -m vqdna.analysis.reference)."""
    input:
        rules.provenance.output,
        reference=config.get("reference_dir") or [],
    output:
        f"{W}/compare.md",
    params:
        workdir=lambda wc, output: str(Path(output[0]).parent),
    log:
        f"{W}/logs/compare.log",
    conda:
        "../environment.yml"
    shell:
        "python -m vqdna.analysis.reference compare {params.workdir} {input.reference} --markdown {output} > {log} 2>&1"
