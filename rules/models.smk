# Stage 2 (masked-modeling pre-training) and stage 3 (fine-tuning, linear probe), plus the
# classical k-mer-spectrum baseline that every results table carries as a reference row.


rule pretrain:
    input:
        notebook="notebooks/pretrain.py",
        tokenizer=model_tokenizer,
        corpus=rules.corpus.output[0],
    output:
        model=f"{W}/models/{{model}}/model.pt",
        metrics=f"{W}/models/{{model}}/metrics.json",
        notebook=f"{W}/models/{{model}}/pretrain.ipynb",
        html=f"{W}/models/{{model}}/pretrain.html",
    params:
        settings=lambda wc: {**study.model_spec(config, wc.model), "encoder": config["encoder"]},  # tracked: a change reruns the job (nb below is derived from paths)
        nb=lambda wc, input, output, threads: nb_params(
            name=wc.model,
            tokenizer_path=input.tokenizer,
            train_path=f"{input.corpus}/train.txt",
            val_path=f"{input.corpus}/val.txt",
            encoder=config["encoder"],
            pretrain=study.model_spec(config, wc.model)["pretrain"],
            model_path=output.model,
            metrics_path=output.metrics,
            seed=0,
            threads=threads,
            device=config["device"],
            profile=config["profile"],
            scale=scale_params(f"{W}/models/{wc.model}/resume.pt"),
        ),
    conda:
        "../environment.yml"
    log:
        f"{W}/logs/pretrain/{{model}}.log",
    benchmark:
        f"{W}/benchmarks/pretrain/{{model}}.tsv"
    threads: config["threads_per_job"]
    resources:
        **job_resources("train"),
    shell:
        RUN_NOTEBOOK


rule finetune:
    input:
        notebook="notebooks/finetune.py",
        task=task_dir,
        model=rules.pretrain.output.model,
        tokenizer=model_tokenizer,
    output:
        metrics=f"{W}/finetune/{{suite}}/{{task}}/{{model}}/seed{{seed}}/metrics.json",
        notebook=f"{W}/finetune/{{suite}}/{{task}}/{{model}}/seed{{seed}}/finetune.ipynb",
        html=f"{W}/finetune/{{suite}}/{{task}}/{{model}}/seed{{seed}}/finetune.html",
    params:
        settings=config["finetune"],  # tracked: a change reruns the job (nb below is derived from paths)
        nb=lambda wc, input, output, threads: nb_params(
            model_name=wc.model,
            task_dir=input.task,
            model_path=input.model,
            tokenizer_path=input.tokenizer,
            finetune=config["finetune"],
            metrics_path=output.metrics,
            seed=int(wc.seed),
            threads=threads,
            device=config["device"],
            profile=config["profile"],
        ),
    conda:
        "../environment.yml"
    log:
        f"{W}/logs/finetune/{{suite}}/{{task}}/{{model}}/seed{{seed}}.log",
    benchmark:
        f"{W}/benchmarks/finetune/{{suite}}/{{task}}/{{model}}/seed{{seed}}.tsv"
    threads: config["threads_per_job"]
    resources:
        **job_resources("train"),
    shell:
        RUN_NOTEBOOK


rule linear_probe:
    input:
        notebook="notebooks/linear_probe.py",
        task=task_dir,
        model=rules.pretrain.output.model,
        tokenizer=model_tokenizer,
    output:
        metrics=f"{W}/linear_probe/{{suite}}/{{task}}/{{model}}/seed{{seed}}/metrics.json",
        notebook=f"{W}/linear_probe/{{suite}}/{{task}}/{{model}}/seed{{seed}}/linear_probe.ipynb",
        html=f"{W}/linear_probe/{{suite}}/{{task}}/{{model}}/seed{{seed}}/linear_probe.html",
    params:
        settings=config["pretrain"]["max_tokens"],  # tracked: a change reruns the job (nb below is derived from paths)
        nb=lambda wc, input, output, threads: nb_params(
            model_name=wc.model,
            task_dir=input.task,
            model_path=input.model,
            tokenizer_path=input.tokenizer,
            max_tokens=config["pretrain"]["max_tokens"],
            metrics_path=output.metrics,
            seed=int(wc.seed),
            threads=threads,
            device=config["device"],
            profile=config["profile"],
        ),
    conda:
        "../environment.yml"
    log:
        f"{W}/logs/linear_probe/{{suite}}/{{task}}/{{model}}/seed{{seed}}.log",
    benchmark:
        f"{W}/benchmarks/linear_probe/{{suite}}/{{task}}/{{model}}/seed{{seed}}.tsv"
    threads: config["threads_per_job"]
    resources:
        **job_resources("train"),
    shell:
        RUN_NOTEBOOK


rule kmer_baseline:
    """k-mer spectrum (3-6) + logistic regression: the classical reference row."""
    input:
        task=task_dir,
    output:
        metrics=f"{W}/baseline/{{suite}}/{{task}}/metrics.json",
    conda:
        "../environment.yml"
    log:
        f"{W}/logs/baseline/{{suite}}/{{task}}.log",
    benchmark:
        f"{W}/benchmarks/baseline/{{suite}}/{{task}}.tsv"
    resources:
        **job_resources("light"),
    run:
        stages.write_kmer_baseline(input.task, output.metrics, config["profile"])
