"""How many pre-training steps does an encoder need to leave its unigram level? One tokenizer of
the default study, pre-trained for many more steps than the study gives it, with the held-out
masked-token loss against the unigram loss of its own targets at every tenth of the run.
Writes ``<out>.csv`` (step, val_loss, unigram_loss, margin %) and ``<out>.png``; prints the first
step at which the margin reaches ``--target`` percent (the budget the README quotes), or that it
never did.

    python benchmarks/pretext_budget.py kmer6 --steps 6000 [--corpus results/corpus] \
        [--out results/pretext_budget_kmer6] [--resume budget.resume]

Needs the default run's corpus windows (``results/corpus/{train,val}.txt``); the encoder,
masking, batch, lr and warm-up come from config/config.yaml unless given here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch
import yaml

from vqdna.data import corpus
from vqdna.tokenizers import build_tokenizer, load_tokenizer
from vqdna.train import stages
from vqdna.workflow import study


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "tokenizer", help="a tokenizer name of config/config.yaml (vq/hrq/bpe: its trained folder)"
    )
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--target", type=float, default=25.0, help="margin below the unigram loss, percent")
    parser.add_argument("--corpus", default="results/corpus")
    parser.add_argument("--tokenizer-dir", default=None, help="trained tokenizer folder (vq, hrq, bpe)")
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--resume",
        default=None,
        help="resume checkpoint: written every --checkpoint-every steps and on SIGTERM; the same "
        "command resumes from it (long runs over several sessions)",
    )
    parser.add_argument("--checkpoint-every", type=int, default=500)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    config = yaml.safe_load(Path(args.config).read_text())
    spec = study.tokenizer_spec(config, args.tokenizer)
    if spec["type"] in ("char", "kmer"):
        tokenizer = build_tokenizer(spec["type"], **{k: v for k, v in spec.items() if k != "type"})
    else:
        folder = args.tokenizer_dir or f"results/tokenizers/{args.tokenizer}/seed0/tokenizer"
        tokenizer = load_tokenizer(folder)
    train = corpus.read_windows(Path(args.corpus) / "train.txt")
    val = corpus.read_windows(Path(args.corpus) / "val.txt")
    settings = {**config["pretrain"], "steps": args.steps, "lr": args.lr or config["pretrain"]["lr"]}
    model = stages.build_masked_lm(tokenizer, config["encoder"], seed=args.seed)
    scale = {"resume_path": args.resume, "checkpoint_every": args.checkpoint_every} if args.resume else None
    history = stages.pretrain(
        model, tokenizer, train, val, settings, seed=args.seed, device="cpu", scale=scale
    )
    curve = pd.DataFrame(
        [
            {"step": h["step"], "val_loss": h["val_loss"], "unigram_loss": h["unigram_loss"]}
            for h in history
            if "val_loss" in h
        ]
    )
    curve["margin %"] = 100 * (1 - curve["val_loss"] / curve["unigram_loss"])
    out = Path(args.out or f"results/pretext_budget_{args.tokenizer}")
    out.parent.mkdir(parents=True, exist_ok=True)
    curve.to_csv(out.with_suffix(".csv"), index=False)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(curve["step"], curve["val_loss"], marker="o", label="held-out masked loss")
    ax.plot(curve["step"], curve["unigram_loss"], ls="--", color="grey", label="unigram loss")
    ax.set_xlabel("pre-training step")
    ax.set_ylabel("nats")
    ax.set_title(f"{args.tokenizer}: lr {settings['lr']:g}, batch {settings['batch_size']}")
    ax.legend()
    fig.savefig(out.with_suffix(".png"), dpi=120, bbox_inches="tight")
    print(curve.to_string(index=False))
    reached = curve[curve["margin %"] >= args.target]
    print(
        f"{args.tokenizer}: margin {args.target:g}% first reached at step {int(reached['step'].iloc[0])}"
        if len(reached)
        else f"{args.tokenizer}: margin {args.target:g}% not reached in {args.steps} steps "
        f"(last {curve['margin %'].iloc[-1]:.1f}%)"
    )


if __name__ == "__main__":
    main()
