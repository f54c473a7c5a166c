"""The student copy of the lessons: solution cells stripped, outputs cleared.

A lesson cell tagged ``solution`` (cell metadata ``{"tags": ["solution"]}``) holds a worked
solution for instructors; the learners' copy leaves it out, as the INRIA scikit-learn MOOC
does with nbconvert's tag preprocessors. Cells tagged ``hint`` stay. One command writes the
copy (it needs nbconvert, which JupyterLab brings: ``pip install 'mmkit[lab]'``)::

    python -m mmkit.student notebooks/ student-notebooks/

Every ``*.ipynb`` of the source folder is written to the target folder with its solution
cells removed and every output and execution count cleared; other files of the folder
(``README.md``, ``GLOSSARY.md``...) are copied as they are. The source is never changed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from mmkit.errors import InvalidArgument

__all__ = ["SOLUTION_TAG", "student_copy", "student_notebook"]

#: Cells with this tag are removed from the student copy.
SOLUTION_TAG = "solution"


def student_notebook(path: str | Path) -> object:
    """The notebook at ``path`` without its solution cells and outputs (an nbformat node)."""
    import nbformat
    from nbconvert.preprocessors import ClearOutputPreprocessor, TagRemovePreprocessor

    nb = nbformat.read(str(path), as_version=4)
    resources: dict[str, object] = {}
    strip = TagRemovePreprocessor(remove_cell_tags={SOLUTION_TAG}, enabled=True)
    nb, resources = strip.preprocess(nb, resources)
    nb, _ = ClearOutputPreprocessor(enabled=True).preprocess(nb, resources)
    return nb


def student_copy(source: str | Path, target: str | Path) -> list[Path]:
    """Write the student copy of the lessons in ``source`` to ``target``; returns the
    notebooks written. ``target`` must not be ``source`` or inside it."""
    import nbformat

    src, dst = Path(source).resolve(), Path(target).resolve()
    if not src.is_dir():
        raise InvalidArgument(f"{src} is not a folder of lessons")
    if dst == src or src in dst.parents:
        raise InvalidArgument(
            f"the student copy {dst} would be inside the lessons {src}: name another folder"
        )
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(src.iterdir()):
        if path.suffix == ".ipynb":
            out = dst / path.name
            nbformat.write(student_notebook(path), str(out))
            written.append(out)
        elif path.is_file() and not path.name.startswith("."):
            shutil.copy2(path, dst / path.name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mmkit.student",
        description="Write the learners' copy of the lessons: solution cells removed, "
        "outputs cleared.",
    )
    parser.add_argument("source", help="the lessons folder (notebooks/)")
    parser.add_argument("target", help="where to write the student copy")
    args = parser.parse_args(argv)
    try:
        written = student_copy(args.source, args.target)
    except InvalidArgument as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} notebooks to {Path(args.target).resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
