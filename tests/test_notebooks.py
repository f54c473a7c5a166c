"""Every lesson runs top to bottom in a fresh kernel, and is committed without outputs.

Each notebook in notebooks/ is executed with nbclient in a fresh ``python3`` kernel of the
Python running the tests (checked: the kernel reports the same ``sys.executable``), with a
per-cell timeout so that a cell stuck on a widget cannot hang the run (nbclient #312).
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 120  # s, per cell
KERNEL_START_TIMEOUT = 60  # s

_PROBE = "import sys; print('KERNEL-PYTHON=' + sys.executable)"


def test_there_are_lessons() -> None:
    assert any(p.name == "00-welcome.ipynb" for p in NOTEBOOKS), "notebooks/ has no lessons"


@pytest.mark.notebook
@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_in_fresh_kernel(path: Path, tmp_path: Path) -> None:
    # Run a copy, in a copy of the folder, so that files a lesson writes stay out of the repo.
    work = tmp_path / "notebooks"
    shutil.copytree(path.parent, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    nb = nbformat.read(work / path.name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(_PROBE))
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        startup_timeout=KERNEL_START_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(work)}},
        allow_errors=True,  # collect every error below instead of stopping at the first
    )
    started = time.monotonic()
    client.execute()
    elapsed = time.monotonic() - started
    print(f"{path.name}: executed in {elapsed:.1f}s")

    errors = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                errors.append(f"cell {index}: {output.ename}: {output.evalue}")
            elif output.output_type == "stream" and output.name == "stderr":
                errors.append(f"cell {index} wrote to stderr: {output.text[:500]}")
    assert not errors, f"{path.name}:\n" + "\n".join(errors)

    probe = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    kernel_python = re.search(r"KERNEL-PYTHON=(.*)", probe)
    assert kernel_python is not None, probe
    assert Path(kernel_python.group(1).strip()).resolve() == Path(sys.executable).resolve()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_notebook_is_clean(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    dirty = [
        index
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; strip them"
    # Saved widget state carries megabytes of plotly.js and goes stale: never commit it.
    assert "widgets" not in nb.metadata, f"{path.name}: saved widget state in metadata"


def test_lesson_index_lists_every_notebook() -> None:
    index = (ROOT / "notebooks" / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in NOTEBOOKS if f"({p.name})" not in index]
    assert not missing, f"notebooks/README.md does not link {missing}"
