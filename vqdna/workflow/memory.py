"""The study's peak GPU memory plan for a config, from the command line (the estimates:
:mod:`vqdna.train.memory`; the plan-time check: :func:`vqdna.workflow.study.memory_plan`).

``python -m vqdna.workflow.memory config/paper.yaml [gpu_memory_gb]``
"""

from __future__ import annotations

import sys

import yaml

from vqdna.workflow import study


def main(argv: list[str]) -> None:
    config = yaml.safe_load(open(argv[0]))
    if len(argv) > 1:
        config["gpu_memory_gb"] = float(argv[1])
    for name, estimate, fits in study.memory_plan(config):
        print(f"{name}: {estimate}; largest micro-batch that fits in {config['gpu_memory_gb']} GiB: {fits}")


if __name__ == "__main__":
    main(sys.argv[1:])
