"""A learner's own copy of the lessons: the folder ``mmkit lab`` serves.

JupyterLab saves (and autosaves) every notebook it opens, outputs included. Serving the lessons
where mmkit keeps them would write into a git clone (a learner's ``git pull`` then conflicts)
or into an installed package. So the lessons are copied into a *workspace*, a folder outside
both (``~/mmkit-lessons`` unless the learner names another), and only the copy is ever opened.

:func:`sync_workspace` copies the lessons there the first time, and on later runs brings in new
and updated lessons without ever overwriting a file the learner changed. A manifest
(``.mmkit/manifest.json`` in the workspace) records the hash of every file it copied. A file
whose hash still matches the manifest is mmkit's and may be updated; any other file is the
learner's: it is kept, and the new version is written beside it (``01-granules.ipynb`` ->
``01-granules.new.ipynb``). Deleting a lesson and running again restores a fresh copy.

>>> import tempfile
>>> src, ws = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp()) / "lessons"
>>> _ = (src / "00-welcome.ipynb").write_text("v1")
>>> sync_workspace(ws, src).copied
['00-welcome.ipynb']
>>> _ = (ws / "00-welcome.ipynb").write_text("my notes")   # the learner edits the lesson
>>> _ = (src / "00-welcome.ipynb").write_text("v2")        # and a new version arrives
>>> report = sync_workspace(ws, src)
>>> report.kept, (ws / "00-welcome.ipynb").read_text(), (ws / "00-welcome.new.ipynb").read_text()
([('00-welcome.ipynb', '00-welcome.new.ipynb')], 'my notes', 'v2')

Run as ``python -m mmkit.workspace [DIR]`` it copies the lessons and prints what it did (the
Binder start script does this before the server starts).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mmkit.errors import InvalidArgument

__all__ = [
    "DEFAULT_WORKSPACE",
    "MANIFEST",
    "STATE_DIR",
    "WORKSPACE_ENV",
    "SyncReport",
    "WorkspaceRefused",
    "check_workspace",
    "default_workspace",
    "lesson_files",
    "new_version_name",
    "sync_workspace",
]

#: Where the lessons are copied unless the learner names another folder (``~`` expanded).
DEFAULT_WORKSPACE = "~/mmkit-lessons"
#: Environment variable naming the workspace (``--workspace`` wins over it).
WORKSPACE_ENV = "MMKIT_WORKSPACE"
#: mmkit's own files inside a workspace (hidden: JupyterLab's file browser does not list it).
STATE_DIR = ".mmkit"
#: The manifest of copied files, relative to the workspace.
MANIFEST = f"{STATE_DIR}/manifest.json"

# The notebooks, and the guides they link to (README.md, GLOSSARY.md, INSTRUCTORS.md).
_PATTERNS = ("*.ipynb", "*.md")


class WorkspaceRefused(InvalidArgument):
    """``-EINVAL``: the workspace would put learners' saves where they do damage (a git clone,
    the lessons mmkit ships, the installed package or its Python environment)."""


def default_workspace() -> Path:
    """``$MMKIT_WORKSPACE`` if set, else ``~/mmkit-lessons`` (``~`` expanded)."""
    return Path(os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE).expanduser()


def lesson_files(source: str | os.PathLike[str]) -> list[Path]:
    """The files of a lessons folder that a workspace receives, sorted by name: every
    notebook (``*.ipynb``) and every guide the lessons link to (``*.md``: the index
    ``README.md``, ``GLOSSARY.md``, ``INSTRUCTORS.md``)."""
    folder = Path(source)
    found = [p for pattern in _PATTERNS for p in folder.glob(pattern) if p.is_file()]
    return sorted(found, key=lambda p: p.name)


def new_version_name(name: str) -> str:
    """Where an update goes when the learner changed a file: ``a.ipynb`` -> ``a.new.ipynb``.

    >>> new_version_name("01-granules.ipynb"), new_version_name("README.md")
    ('01-granules.new.ipynb', 'README.new.md')
    """
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}.new.{suffix}" if dot else f"{name}.new"


def _git_work_tree(path: Path) -> Path | None:
    """The git work tree holding ``path`` (nearest ancestor with a ``.git``), if any."""
    for folder in (path, *path.parents):
        if (folder / ".git").exists():
            return folder
    return None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _environment_dirs() -> list[Path]:
    import mmkit

    dirs = {Path(mmkit.__file__).resolve().parent, Path(sys.prefix).resolve()}
    for key in ("purelib", "platlib"):
        dirs.add(Path(sysconfig.get_path(key)).resolve())
    return sorted(dirs)


def check_workspace(
    workspace: str | os.PathLike[str],
    source: str | os.PathLike[str],
    *,
    allow_git: bool = False,
) -> Path:
    """Return ``workspace`` made absolute, or refuse it.

    Refused: a folder inside (or holding) the lessons folder ``source``; inside the mmkit
    package or the Python environment it is installed in; inside a git work tree (a clone:
    saved lessons would show in ``git status`` and conflict on ``git pull``), unless
    ``allow_git`` (Binder, where the repository is the throwaway home folder).

    Raises:
        WorkspaceRefused: with the reason and a folder that would do.
    """
    ws = Path(workspace).expanduser().resolve()
    src = Path(source).resolve()
    fix = f"fix: choose a folder outside it, e.g. --workspace {DEFAULT_WORKSPACE}"
    if _inside(ws, src) or _inside(src, ws):
        raise WorkspaceRefused(
            f"workspace {ws} overlaps the lessons folder {src} that mmkit copies from: "
            f"JupyterLab's saves would change the lessons themselves; {fix}"
        )
    for folder in _environment_dirs():
        if _inside(ws, folder):
            raise WorkspaceRefused(
                f"workspace {ws} is inside the Python installation ({folder}): "
                f"the next install or update would delete the learner's work; {fix}"
            )
    if ws.exists() and not ws.is_dir():
        raise WorkspaceRefused(f"workspace {ws} exists and is not a folder; {fix}")
    tree = _git_work_tree(ws)
    if tree is not None and not allow_git:
        raise WorkspaceRefused(
            f"workspace {ws} is inside the git work tree {tree}: saved lessons would show in "
            f"its `git status` and conflict with `git pull`; {fix}"
        )
    return ws


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy(src: Path, dest: Path) -> None:
    """Copy atomically: a reader (or a crash) never sees half a notebook."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")  # hidden, and the umask's mode
    try:
        with tmp.open("wb") as out:
            out.write(src.read_bytes())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass
class SyncReport:
    """What :func:`sync_workspace` did, file by file (names relative to the workspace)."""

    workspace: Path
    source: Path
    copied: list[str] = field(default_factory=list)
    """New to the workspace (or deleted by the learner, so restored)."""
    updated: list[str] = field(default_factory=list)
    """Replaced by a newer version: the learner had not changed them."""
    kept: list[tuple[str, str]] = field(default_factory=list)
    """The learner's changed file, and the name the new version was written under."""
    blocked: list[tuple[str, str]] = field(default_factory=list)
    """The learner changed both the file and its ``.new`` copy: nothing written."""
    unchanged: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One line per thing worth telling the learner (nothing when all is up to date)."""
        out = [f"copied {name} into {self.workspace}" for name in self.copied]
        out += [f"updated {name} (you had not changed it)" for name in self.updated]
        out += [
            f"kept your {name}; the new version is beside it as {new}" for name, new in self.kept
        ]
        out += [
            f"kept your {name} and {new}; rename or delete {new} to receive the new version"
            for name, new in self.blocked
        ]
        return out


def _load_manifest(ws: Path) -> dict[str, dict[str, str]]:
    path = ws / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"files": {}, "offered": {}}
    except (OSError, ValueError) as err:
        raise InvalidArgument(
            f"the workspace manifest {path} cannot be read ({err}); "
            "fix: delete it (every existing file is then treated as yours and kept)"
        ) from err
    return {"files": dict(data.get("files", {})), "offered": dict(data.get("offered", {}))}


def _save_manifest(ws: Path, manifest: dict[str, dict[str, str]]) -> None:
    path = ws / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    body = {"format": 1, "files": manifest["files"], "offered": manifest["offered"]}
    tmp.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def sync_workspace(
    workspace: str | os.PathLike[str],
    source: str | os.PathLike[str] | None = None,
    *,
    allow_git: bool = False,
) -> SyncReport:
    """Copy new and updated lessons from ``source`` into ``workspace``; keep the learner's.

    For each lesson file (see :func:`lesson_files`):

    - missing in the workspace: copied (also when the learner deleted it: a fresh copy);
    - same bytes as the lesson: nothing to do;
    - unchanged since mmkit copied it (its hash is the manifest's): replaced by the new one;
    - anything else is the learner's: kept, and the new version written as
      :func:`new_version_name` (unless the learner changed that copy too: then nothing).

    Args:
        workspace: the folder to fill (created if missing); checked by :func:`check_workspace`.
        source: the lessons folder; ``None`` means :func:`mmkit.lab.find_notebooks_dir`.
        allow_git: accept a workspace inside a git work tree (see :func:`check_workspace`).

    Raises:
        WorkspaceRefused: the workspace is somewhere saves would do damage.
        NotFound: no lessons folder was found.
    """
    if source is None:
        from mmkit.lab import find_notebooks_dir

        source = find_notebooks_dir()
    src = Path(source).resolve()
    ws = check_workspace(workspace, src, allow_git=allow_git)
    try:
        return _sync(ws, src)
    except OSError as err:
        raise InvalidArgument(
            f"cannot copy the lessons into the workspace {ws}: {err}; "
            "fix: choose a folder you can write, e.g. --workspace ~/mmkit-lessons"
        ) from err


def _sync(ws: Path, src: Path) -> SyncReport:
    ws.mkdir(parents=True, exist_ok=True)
    manifest = _load_manifest(ws)
    files, offered = manifest["files"], manifest["offered"]
    report = SyncReport(workspace=ws, source=src)
    for lesson in lesson_files(src):
        name, dest = lesson.name, ws / lesson.name
        new_hash = _sha256(lesson)
        if not dest.exists():
            _copy(lesson, dest)
            files[name] = new_hash
            report.copied.append(name)
            continue
        have = _sha256(dest)
        if have == new_hash:
            files[name] = new_hash
            report.unchanged.append(name)
        elif files.get(name) == have:
            _copy(lesson, dest)
            files[name] = new_hash
            report.updated.append(name)
        else:
            new_name = new_version_name(name)
            beside = ws / new_name
            beside_hash = _sha256(beside) if beside.exists() else None
            if beside_hash in (None, offered.get(new_name), new_hash):
                if beside_hash != new_hash:
                    _copy(lesson, beside)
                offered[new_name] = new_hash
                report.kept.append((name, new_name))
            else:
                report.blocked.append((name, new_name))
    _save_manifest(ws, manifest)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mmkit.workspace [DIR] [--allow-git]``: copy the lessons, say what changed."""
    parser = argparse.ArgumentParser(
        prog="python -m mmkit.workspace",
        description="Copy mmkit's lessons into a workspace, keeping the learner's changes.",
    )
    parser.add_argument("workspace", nargs="?", default=None, help=f"default: {DEFAULT_WORKSPACE}")
    parser.add_argument(
        "--allow-git",
        action="store_true",
        help="accept a workspace inside a git work tree (Binder: the repository is $HOME)",
    )
    args = parser.parse_args(argv)
    from mmkit.errors import MmkitError

    try:
        report = sync_workspace(args.workspace or default_workspace(), allow_git=args.allow_git)
    except MmkitError as err:
        print(f"mmkit workspace: error: {err}", file=sys.stderr)
        return 2
    for line in report.lines() or [f"{report.workspace} is up to date"]:
        print(line)
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess in the tests
    raise SystemExit(main())
