"""The workspace copy: lessons arrive, updates arrive, and a learner's edits are never lost.

The property test plays a learner and a maintainer against each other (edit, delete, publish a
new version, sync, in any order) and checks every sync against a model of who owns each file.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit.errors import InvalidArgument
from mmkit.workspace import (
    MANIFEST,
    WorkspaceRefused,
    check_workspace,
    lesson_files,
    sync_workspace,
)

ROOT = Path(__file__).resolve().parent.parent


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_lesson_files_are_notebooks_and_guides(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ["00-a.ipynb", "README.md", "GLOSSARY.md", "INSTRUCTORS.md", "notes.txt"]:
        _write(src / name, name)
    (src / ".ipynb_checkpoints").mkdir()
    _write(src / ".ipynb_checkpoints" / "00-a-checkpoint.ipynb", "x")
    names = [p.name for p in lesson_files(src)]
    assert names == ["00-a.ipynb", "GLOSSARY.md", "INSTRUCTORS.md", "README.md"]


def test_every_link_between_the_lessons_resolves_in_the_workspace(tmp_path: Path) -> None:
    """The lessons link to each other and to the glossary: those files travel with them."""
    ws = tmp_path / "ws"
    sync_workspace(ws, ROOT / "notebooks")
    copied = {p.name for p in ws.iterdir()}
    for lesson in lesson_files(ROOT / "notebooks"):
        text = lesson.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#:\s]+\.(?:ipynb|md))[)#]", text):
            if (ROOT / "notebooks" / target).exists():  # a lesson still to come is not copied
                assert target in copied, f"{lesson.name} links to {target}, not in the workspace"


def test_first_sync_copies_every_lesson_and_records_its_hash(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _write(src / "00-welcome.ipynb", "welcome")
    _write(src / "README.md", "index")
    report = sync_workspace(tmp_path / "ws", src)
    assert report.copied == ["00-welcome.ipynb", "README.md"]
    manifest = json.loads(_read(tmp_path / "ws" / MANIFEST))
    for name in report.copied:
        assert _read(tmp_path / "ws" / name) == _read(src / name)
        assert manifest["files"][name] == hashlib.sha256((src / name).read_bytes()).hexdigest()
    again = sync_workspace(tmp_path / "ws", src)
    assert again.unchanged == report.copied and again.lines() == []


def test_each_case_of_an_update(tmp_path: Path) -> None:
    src, ws = tmp_path / "src", tmp_path / "ws"
    src.mkdir()
    for name in "abcd":
        _write(src / f"{name}.ipynb", "v1")
    sync_workspace(ws, src)
    _write(ws / "a.ipynb", "learner")  # a: the learner's now
    (ws / "b.ipynb").unlink()  # b: deleted to get a fresh copy
    _write(ws / "mine.ipynb", "learner's own notebook")
    for name in "abc":
        _write(src / f"{name}.ipynb", "v2")  # d stays v1
    _write(src / "e.ipynb", "new lesson")
    report = sync_workspace(ws, src)
    assert report.copied == ["b.ipynb", "e.ipynb"]
    assert report.updated == ["c.ipynb"]
    assert report.kept == [("a.ipynb", "a.new.ipynb")]
    assert report.unchanged == ["d.ipynb"]
    assert _read(ws / "a.ipynb") == "learner" and _read(ws / "a.new.ipynb") == "v2"
    assert _read(ws / "mine.ipynb") == "learner's own notebook"
    assert "kept your a.ipynb; the new version is beside it as a.new.ipynb" in report.lines()

    # The learner works in the .new copy too: it is theirs, and nothing is written over it.
    _write(ws / "a.new.ipynb", "learner again")
    _write(src / "a.ipynb", "v3")
    report = sync_workspace(ws, src)
    assert report.blocked == [("a.ipynb", "a.new.ipynb")]
    assert _read(ws / "a.new.ipynb") == "learner again"
    assert any("rename or delete a.new.ipynb" in line for line in report.lines())


def test_a_file_that_was_there_before_mmkit_is_the_learners(tmp_path: Path) -> None:
    src, ws = tmp_path / "src", tmp_path / "ws"
    src.mkdir()
    ws.mkdir()
    _write(src / "00-welcome.ipynb", "lesson")
    _write(ws / "00-welcome.ipynb", "someone else's file")
    report = sync_workspace(ws, src)
    assert report.kept == [("00-welcome.ipynb", "00-welcome.new.ipynb")]
    assert _read(ws / "00-welcome.ipynb") == "someone else's file"


def test_a_broken_manifest_is_reported_with_a_fix(tmp_path: Path) -> None:
    src, ws = tmp_path / "src", tmp_path / "ws"
    src.mkdir()
    _write(src / "00-welcome.ipynb", "lesson")
    sync_workspace(ws, src)
    _write(ws / MANIFEST, "{not json")
    with pytest.raises(ValueError, match="fix: delete it"):
        sync_workspace(ws, src)


def test_a_workspace_that_cannot_be_one_is_refused_with_a_fix(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _write(src / "00-welcome.ipynb", "lesson")
    _write(tmp_path / "file", "not a folder")
    with pytest.raises(WorkspaceRefused, match="not a folder"):
        sync_workspace(tmp_path / "file", src)
    # A folder that cannot be made (below a file: fails even for root, unlike permissions).
    with pytest.raises(InvalidArgument, match="cannot copy the lessons") as info:
        sync_workspace(tmp_path / "file" / "ws", src)
    assert "fix: choose a folder you can write" in str(info.value)


def test_git_work_trees_are_refused_unless_allowed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    with pytest.raises(WorkspaceRefused, match=r"git work tree .*repo"):
        check_workspace(repo / "deep" / "lessons", src)
    assert check_workspace(repo / "lessons", src, allow_git=True) == (repo / "lessons").resolve()


def test_module_entry_point(tmp_path: Path) -> None:
    """``python -m mmkit.workspace DIR``, as the Binder start script runs it."""
    ws = tmp_path / "ws"
    run = subprocess.run(
        [sys.executable, "-m", "mmkit.workspace", str(ws)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert f"copied 00-welcome.ipynb into {ws}" in run.stdout
    assert (ws / "00-welcome.ipynb").read_bytes() == (
        ROOT / "notebooks/00-welcome.ipynb"
    ).read_bytes()
    refused = subprocess.run(
        [sys.executable, "-m", "mmkit.workspace", str(ROOT / "lessons")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "git work tree" in refused.stderr
    assert not (ROOT / "lessons").exists()


# --- a learner and a maintainer, in any order ------------------------------------------------

NAMES = ("a.ipynb", "README.md")
_action = st.one_of(
    st.tuples(st.just("learner-edits"), st.sampled_from(NAMES)),
    st.tuples(st.just("learner-edits-new"), st.sampled_from(NAMES)),
    st.tuples(st.just("learner-deletes"), st.sampled_from(NAMES)),
    st.tuples(st.just("publish"), st.sampled_from(NAMES)),
    st.tuples(st.just("sync"), st.just("")),
)


def _new_name(name: str) -> str:
    stem, _, suffix = name.rpartition(".")
    return f"{stem}.new.{suffix}"


@settings(max_examples=150, deadline=None)
@given(actions=st.lists(_action, max_size=25))
def test_no_learner_edit_is_ever_lost(tmp_path_factory: pytest.TempPathFactory, actions) -> None:  # type: ignore[no-untyped-def]
    base = tmp_path_factory.mktemp("model")
    src, ws = base / "src", base / "ws"
    src.mkdir()
    version = dict.fromkeys(NAMES, 0)
    for name in NAMES:
        _write(src / name, f"{name} v0")
    sync_workspace(ws, src)
    # The model: what the learner last wrote into each file they own (None: mmkit's file).
    owned: dict[str, str | None] = dict.fromkeys(NAMES)
    owned_new: dict[str, str | None] = dict.fromkeys(NAMES)
    edits = 0
    for kind, name in actions:
        if kind == "learner-edits":
            edits += 1
            owned[name] = f"learner edit {edits}"
            _write(ws / name, owned[name])
        elif kind == "learner-edits-new" and (ws / _new_name(name)).exists():
            edits += 1
            owned_new[name] = f"learner edit {edits}"
            _write(ws / _new_name(name), owned_new[name])
        elif kind == "learner-deletes" and (ws / name).exists():
            (ws / name).unlink()
            owned[name] = None
        elif kind == "publish":
            version[name] += 1
            _write(src / name, f"{name} v{version[name]}")
        elif kind == "sync":
            sync_workspace(ws, src)
            for n in NAMES:
                current = f"{n} v{version[n]}"
                if owned[n] is None or owned[n] == current:
                    assert _read(ws / n) == current  # mmkit's file: always up to date
                    owned[n] = None
                    continue
                assert _read(ws / n) == owned[n]  # the learner's: never touched
                beside = ws / _new_name(n)
                if owned_new[n] is not None and owned_new[n] != current:
                    assert _read(beside) == owned_new[n]  # their edit of the .new copy too
                else:
                    assert _read(beside) == current  # the update waits beside it
                    owned_new[n] = None
