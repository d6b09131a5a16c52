# Stage 1: every tokenizer is built (char, k-mer) or trained (BPE, VQ, HRQ) on the corpus and
# its statistics are measured on held-out corpus windows. VQ/HRQ are trained once per replicate
# (seed = replicate); the others are built once (seed 0): see study.tokenizer_seed.


rule train_tokenizer:
    input:
        notebook="notebooks/train_tokenizer.py",
        corpus=rules.corpus.output[0],
        tasks=lambda wc: list(tokenizer_task_dirs(wc.tokenizer).values()),
    output:
        tokenizer=directory(f"{W}/tokenizers/{{tokenizer}}/seed{{tseed}}/tokenizer"),
        metrics=f"{W}/tokenizers/{{tokenizer}}/seed{{tseed}}/metrics.json",
        notebook=f"{W}/tokenizers/{{tokenizer}}/seed{{tseed}}/train_tokenizer.ipynb",
        html=f"{W}/tokenizers/{{tokenizer}}/seed{{tseed}}/train_tokenizer.html",
    params:
        settings=lambda wc: training_settings("train_tokenizer", study.tokenizer_spec(config, wc.tokenizer)),
        nb=lambda wc, input, output, threads: nb_params(
            name=wc.tokenizer,
            spec=study.tokenizer_spec(config, wc.tokenizer),
            train_path=f"{input.corpus}/train.txt",
            val_path=f"{input.corpus}/val.txt",
            task_dirs=tokenizer_task_dirs(wc.tokenizer),
            out_dir=output.tokenizer,
            metrics_path=output.metrics,
            seed=int(wc.tseed),
            threads=threads,
            device=config["device"],
            profile=config["profile"],
            scale=scale_params(f"{W}/tokenizers/{wc.tokenizer}/seed{wc.tseed}/resume.pt"),
        ),
    conda:
        "../environment.yml"
    log:
        f"{W}/logs/tokenizers/{{tokenizer}}/seed{{tseed}}.log",
    benchmark:
        f"{W}/timings/tokenizers/{{tokenizer}}/seed{{tseed}}.tsv"
    threads: config["threads_per_job"]
    resources:
        **job_resources("train_tokenizer"),
    shell:
        train_command("train_tokenizer")
