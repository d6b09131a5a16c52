"""Train one workflow stage data-parallel: the entry point a rule runs under ``torchrun`` when
the stage's ``resources.<stage>.processes`` (or ``gpu``) is above 1 (rules/common.smk).

``python -m torch.distributed.run --standalone --nproc_per_node=N -m vqdna.workflow.launch pretrain PARAMS``
takes the notebook's parameters (the same JSON the rule gives papermill), trains exactly what
the notebook would (``train_tokenizer`` or ``pretrain``) on N ranks and keeps the finished resume
checkpoint at ``scale.resume_path``. The notebook then runs as usual in one process: it finds the
finished checkpoint, resumes at the last step (nothing left to train), writes its outputs and
removes the checkpoint. Rank 0 prints the training history as one ``history:`` JSON line.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
import torch.distributed as dist

from vqdna.data import corpus
from vqdna.tokenizers import load_tokenizer
from vqdna.train import stages
from vqdna.train.tokenizer import train_tokenizer

STAGES = ("train_tokenizer", "pretrain")


def train(stage: str, params: dict) -> list[dict]:
    """Train ``stage`` as its notebook does (same parameters, same seeds), keeping the final
    resume checkpoint. -> the history (empty for a tokenizer that is built, not trained)."""
    if not params.get("scale", {}).get("resume_path"):
        raise ValueError(
            "a torchrun launch needs scale.resume_path: the notebook takes its result from there"
        )
    scale = {**params["scale"], "keep_final": True}
    train_windows, val_windows = (
        corpus.read_windows(params["train_path"]),
        corpus.read_windows(params["val_path"]),
    )
    if stage == "train_tokenizer":
        if params["spec"]["type"] not in ("vq", "hrq"):
            return []  # char / k-mer / BPE: nothing data-parallel to train; the notebook builds it
        _, history = train_tokenizer(
            params["spec"],
            train_windows,
            val_windows,
            seed=params["seed"],
            device=params["device"],
            scale=scale,
        )
        return history
    tokenizer = load_tokenizer(params["tokenizer_path"], trust_remote_code=params.get("trusted_classes", []))
    model = stages.build_masked_lm(tokenizer, params["encoder"], seed=params["seed"])
    return stages.pretrain(
        model,
        tokenizer,
        train_windows,
        val_windows,
        params["pretrain"],
        seed=params["seed"],
        device=params["device"],
        scale=scale,
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("params", help="JSON object of the stage notebook's parameters")
    args = parser.parse_args(argv)
    params = json.loads(args.params)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    torch.set_num_threads(max(1, params.get("threads", 1) // world))  # the job's threads, shared by its ranks
    if params.get("device") != "cpu" and torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    history = train(args.stage, params)
    if int(os.environ.get("RANK", "0")) == 0:
        print("history:", json.dumps(history), flush=True)
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
