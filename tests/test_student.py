"""The student copy strips solution cells and outputs, keeps everything else, and never
writes into the lessons folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from mmkit.errors import InvalidArgument
from mmkit.student import SOLUTION_TAG, main, student_copy

ROOT = Path(__file__).resolve().parent.parent


def _lesson(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A lesson"),
        nbformat.v4.new_code_cell("answer = 42", metadata={"tags": [SOLUTION_TAG]}),
        nbformat.v4.new_code_cell("print('hint')", metadata={"tags": ["hint"]}),
        nbformat.v4.new_code_cell("1 + 1", execution_count=3),
    ]
    nb.cells[3].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"})]
    path = folder / "01-x.ipynb"
    nbformat.write(nb, str(path))
    (folder / "GLOSSARY.md").write_text("terms\n", encoding="utf-8")
    return path


def test_solution_cells_and_outputs_are_stripped(tmp_path: Path) -> None:
    src, dst = tmp_path / "lessons", tmp_path / "student"
    src.mkdir()
    original = _lesson(src).read_bytes()
    assert main([str(src), str(dst)]) == 0
    out = nbformat.read(str(dst / "01-x.ipynb"), as_version=4)
    sources = [c.source for c in out.cells]
    assert sources == ["# A lesson", "print('hint')", "1 + 1"]
    assert all(not c.get("outputs") and not c.get("execution_count") for c in out.cells[1:])
    assert (dst / "GLOSSARY.md").read_text(encoding="utf-8") == "terms\n"
    assert (src / "01-x.ipynb").read_bytes() == original  # the source is untouched


def test_the_copy_never_goes_inside_the_lessons(tmp_path: Path) -> None:
    src = tmp_path / "lessons"
    src.mkdir()
    _lesson(src)
    with pytest.raises(InvalidArgument):
        student_copy(src, src / "student")
    assert main([str(src), str(src)]) == 2
    assert sorted(p.name for p in src.iterdir()) == ["01-x.ipynb", "GLOSSARY.md"]


def test_the_real_lessons_have_a_student_copy_without_solutions(tmp_path: Path) -> None:
    src = tmp_path / "lessons"
    shutil.copytree(ROOT / "notebooks", src)
    written = student_copy(src, tmp_path / "student")
    assert {p.name for p in written} == {p.name for p in src.glob("*.ipynb")}
    for path in written:
        nb = nbformat.read(str(path), as_version=4)
        tags = [t for c in nb.cells for t in c.get("metadata", {}).get("tags", [])]
        assert SOLUTION_TAG not in tags, path.name
        kept = nbformat.read(str(src / path.name), as_version=4)
        solutions = sum(SOLUTION_TAG in c.get("metadata", {}).get("tags", []) for c in kept.cells)
        assert len(nb.cells) == len(kept.cells) - solutions
