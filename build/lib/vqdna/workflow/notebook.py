"""Run one jupytext notebook with papermill and render it to HTML, in a single process.

``python -m vqdna.workflow.notebook notebooks/finetune.py out/finetune.ipynb --params '{"seed": 1}'``
writes ``out/finetune.ipynb`` (executed, with the injected parameters) and ``out/finetune.html``.
Doing the three steps (jupytext -> papermill -> nbconvert) in one interpreter instead of three
command-line tools saves several seconds of start-up per workflow job.
"""

from __future__ import annotations

import argparse
import json
import signal
from pathlib import Path


def run_notebook(source, output, parameters: dict | None = None, kernel: str = "python3") -> Path:
    """Execute ``source`` (a jupytext percent ``.py`` file or an ``.ipynb``) with ``parameters``
    injected after its ``parameters`` cell; write the executed notebook to ``output`` and its
    HTML rendering beside it. The page is for reading: code cells are hidden (their outputs
    stay), and a first line names the executed notebook and the source, one click away. A
    failing cell raises papermill's error (the partly executed notebook is still written, for
    debugging)."""
    import jupytext
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    notebook = jupytext.read(source)
    notebook.metadata.setdefault("language_info", {"name": "python"})
    executed = papermill.execute_notebook(
        notebook, str(output), parameters=parameters or {}, kernel_name=kernel, progress_bar=False, cwd=None
    )
    page = nbformat.from_dict(executed)
    where = (
        f"*Code hidden on this page: the executed notebook is `{output.name}` beside it; its "
        f"source is `{Path(source).name}` in `notebooks/`.*"
    )
    page.cells.insert(
        1 if page.cells and page.cells[0].cell_type == "markdown" else 0, nbformat.v4.new_markdown_cell(where)
    )
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    html, _ = exporter.from_notebook_node(page)
    output.with_suffix(".html").write_text(html)
    return output


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("output")
    parser.add_argument("--params", default="{}", help="JSON object of notebook parameters")
    parser.add_argument("--kernel", default="python3")
    args = parser.parse_args(argv)
    # Slurm's warning signal (USR1) and SIGTERM reach every process of the job: this runner must
    # outlive them so that the kernel's training loop can write its resume checkpoint and fail
    # (vqdna.train.scale.PreemptionFlag); a Python handler, unlike SIG_IGN, is not inherited by the kernel.
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, lambda signum, frame: print(f"notebook runner: got signal {signum}", flush=True))
    run_notebook(args.source, args.output, json.loads(args.params), args.kernel)


if __name__ == "__main__":
    main()
