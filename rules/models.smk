# Stage 2 (masked-modeling pre-training) and stage 3 (fine-tuning, linear probe), plus the
# classical k-mer-spectrum baseline that every results table carries as a reference row.
# {rep} is the full-pipeline replicate: its tokenizer, pre-training seed and fine-tuning seeds.


rule pretrain:
    input:
        notebook="notebooks/pretrain.py",
        tokenizer=model_tokenizer,
        corpus=rules.corpus.output[0],
    output:
        model=f"{W}/models/{{model}}/rep{{rep}}/model.pt",
        metrics=f"{W}/models/{{model}}/rep{{rep}}/metrics.json",
        notebook=f"{W}/models/{{model}}/rep{{rep}}/pretrain.ipynb",
        html=f"{W}/models/{{model}}/rep{{rep}}/pretrain.html",
    params:
        settings=lambda wc: training_settings("pretrain", {**study.model_spec(config, wc.model), "encoder": config["encoder"]}),
        nb=lambda wc, input, output, threads: nb_params(
            name=wc.model,
            tokenizer_path=input.tokenizer,
            trusted_classes=study.trusted_classes(config),
            train_path=f"{input.corpus}/train.txt",
            val_path=f"{input.corpus}/val.txt",
            encoder=config["encoder"],
            pretrain=study.model_spec(config, wc.model)["pretrain"],
            model_path=output.model,
            metrics_path=output.metrics,
            seed=int(wc.rep),
            threads=threads,
            device=config["device"],
            profile=config["profile"],
            scale=scale_params(f"{W}/models/{wc.model}/rep{wc.rep}/resume.pt"),
        ),
    conda:
        "../environment.yml"
    log:
        f"{W}/logs/pretrain/{{model}}/rep{{rep}}.log",
    benchmark:
        f"{W}/timings/pretrain/{{model}}/rep{{rep}}.tsv"
    threads: config["threads_per_job"]
    resources:
        **job_resources("pretrain"),
    shell:
        train_command("pretrain")


rule finetune:
    """One job per task x model x replicate; it runs every fine-tuning seed of the replicate (one
    kernel start for all of them) and writes one metrics file per seed."""
    input:
        notebook="notebooks/finetune.py",
        task=task_dir,
        model=rules.pretrain.output.model,
        tokenizer=model_tokenizer,
    output:
        metrics=[f"{W}/finetune/{{suite}}/{{task}}/{{model}}/rep{{rep}}/seed{seed}/metrics.json" for seed in SEEDS],
        notebook=f"{W}/finetune/{{suite}}/{{task}}/{{model}}/rep{{rep}}/finetune.ipynb",
        html=f"{W}/finetune/{{suite}}/{{task}}/{{model}}/rep{{rep}}/finetune.html",
    params:
        settings={**FINETUNE, "seeds": SEEDS},
        nb=lambda wc, input, output, threads: nb_params(
            model_name=wc.model,
            task_dir=input.task,
            model_path=input.model,
            tokenizer_path=input.tokenizer,
            trusted_classes=study.trusted_classes(config),
            finetune=FINETUNE,
            metrics_paths=list(output.metrics),
            replicate=int(wc.rep),
            seeds=SEEDS,
            threads=threads,
            device=config["device"],
            profile=config["profile"],
        ),
    conda:
        "../environment.yml"
    log:
        f"{W}/logs/finetune/{{suite}}/{{task}}/{{model}}/rep{{rep}}.log",
    benchmark:
        f"{W}/timings/finetune/{{suite}}/{{task}}/{{model}}/rep{{rep}}.tsv"
    threads: config["threads_per_job"]
    resources:
        **job_resources("finetune"),
    shell:
        RUN_NOTEBOOK


rule linear_probe:
    input:
        notebook="notebooks/linear_probe.py",
        task=task_dir,
        model=rules.pretrain.output.model,
        tokenizer=model_tokenizer,
    output:
        metrics=f"{W}/linear_probe/{{suite}}/{{task}}/{{model}}/rep{{rep}}/metrics.json",
        notebook=f"{W}/linear_probe/{{suite}}/{{task}}/{{model}}/rep{{rep}}/linear_probe.ipynb",
        html=f"{W}/linear_probe/{{suite}}/{{task}}/{{model}}/rep{{rep}}/linear_probe.html",
    params:
        settings=lambda wc: suites.probe_settings(config, wc.suite, wc.task),
        nb=lambda wc, input, output, threads: nb_params(
            model_name=wc.model,
            task_dir=input.task,
            model_path=input.model,
            tokenizer_path=input.tokenizer,
            trusted_classes=study.trusted_classes(config),
            coverage=suites.probe_settings(config, wc.suite, wc.task),
            metrics_path=output.metrics,
            replicate=int(wc.rep),
            threads=threads,
            device=config["device"],
            profile=config["profile"],
        ),
    conda:
        "../environment.yml"
    log:
        f"{W}/logs/linear_probe/{{suite}}/{{task}}/{{model}}/rep{{rep}}.log",
    benchmark:
        f"{W}/timings/linear_probe/{{suite}}/{{task}}/{{model}}/rep{{rep}}.tsv"
    threads: config["threads_per_job"]
    resources:
        **job_resources("linear_probe"),
    shell:
        RUN_NOTEBOOK


rule kmer_baseline:
    """k-mer spectrum (3-6) + logistic regression: the classical reference row."""
    input:
        task=task_dir,
    output:
        metrics=f"{W}/baseline/{{suite}}/{{task}}/metrics.json",
    log:
        f"{W}/logs/baseline/{{suite}}/{{task}}.log",
    benchmark:
        f"{W}/timings/baseline/{{suite}}/{{task}}.tsv"
    resources:
        **job_resources("kmer_baseline"),
    run:
        logged(log[0], baselines.write_kmer_baseline, input.task, output.metrics, config["profile"])
