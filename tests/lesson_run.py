"""Run a lesson as "Run All" does and collect what it shows (for the lessons' tests)."""

from __future__ import annotations

from pathlib import Path

import nbformat


def run_all_outputs(notebook: Path, workdir: Path, *, timeout: int = 120) -> str:
    """Execute ``notebook`` in a fresh kernel (in ``workdir``); fail on an error output;
    return every text and data output it showed, joined."""
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    ).execute()
    outputs = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", out
            outputs.append(str(out.get("text", "")))
            outputs.extend(str(v) for v in out.get("data", {}).values())
    return "\n".join(outputs)
