"""Start JupyterLab on a learner's copy of the lessons: the function behind ``mmkit lab``.

``mmkit lab`` never serves the lessons where mmkit keeps them (a git clone or an installed
package): JupyterLab's autosave would write outputs into them. It copies them into a workspace
(:mod:`mmkit.workspace`, ``~/mmkit-lessons`` by default), then serves that folder and opens
lesson 00. JupyterLab's settings and layouts for these lessons live in the workspace's hidden
``.mmkit/lab/`` folder, where an ``overrides.json`` turns off the "official Jupyter news?"
prompt and the update check (nothing is fetched from the internet).

The server listens on loopback (127.0.0.1) with JupyterLab's token: ``mmkit lab`` never turns
authentication off. To use a remote machine, leave it on loopback and tunnel to it over SSH:
``ssh -L 8888:127.0.0.1:8888 user@host``, run ``mmkit lab --no-browser --port 8888`` there,
and open the printed URL (with its token) on your own machine.

:func:`plan_lab` works out everything (workspace, settings, the command line) without touching
a file or starting a server, so it can be tested; :func:`run_lab` carries the plan out.

>>> plan = plan_lab("/tmp/my-lessons", source="/srv/lessons", port=8899, open_browser=False)
>>> plan.command[1:4]
['-m', 'jupyter', 'lab']
>>> _value(plan.command, "--ServerApp.root_dir"), _value(plan.command, "--port")
('/tmp/my-lessons', '8899')
>>> _value(plan.command, "--LabApp.default_url"), "--no-browser" in plan.command
('/lab/tree/00-welcome.ipynb', True)
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmkit.errors import InvalidArgument, NotFound
from mmkit.workspace import (
    STATE_DIR,
    SyncReport,
    check_workspace,
    default_workspace,
    sync_workspace,
)

__all__ = [
    "FIRST_LESSON",
    "LAB_OVERRIDES",
    "NOTEBOOKS_ENV",
    "LabPlan",
    "find_notebooks_dir",
    "lab_command",
    "plan_lab",
    "prepare",
    "run_lab",
]

#: Environment variable that points ``mmkit lab`` at another lessons folder.
NOTEBOOKS_ENV = "MMKIT_NOTEBOOKS"

# The welcome lesson marks a folder as mmkit's lessons folder (and not any "notebooks/").
_MARKER = "00-welcome.ipynb"
#: The lesson ``mmkit lab`` opens.
FIRST_LESSON = _MARKER

#: JupyterLab setting defaults for the lessons (an ``overrides.json``): no "would you like to
#: get notified about official Jupyter news?" prompt, no news fetched, no update check. They
#: are defaults: a learner may still switch news on in Settings.
LAB_OVERRIDES: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def _candidates() -> list[Path]:
    """Where the lessons may live, most specific first."""
    found: list[Path] = []
    env = os.environ.get(NOTEBOOKS_ENV)
    if env:
        found.append(Path(env))
    # A source checkout (also an editable install): <repo>/mmkit/lab.py -> <repo>/notebooks.
    found.append(Path(__file__).resolve().parent.parent / "notebooks")
    # An installed copy: wheels may ship the lessons as data files under <prefix>/share/mmkit.
    for prefix in {sys.prefix, sysconfig.get_path("data")}:
        found.append(Path(prefix) / "share" / "mmkit" / "notebooks")
    return found


def find_notebooks_dir() -> Path:
    """Return the folder holding mmkit's lessons (``00-welcome.ipynb`` and friends).

    Looked up in order: ``$MMKIT_NOTEBOOKS``, the ``notebooks/`` folder of the source checkout
    this module was imported from, then ``<prefix>/share/mmkit/notebooks`` of an installed copy.

    Raises:
        NotFound: no candidate folder holds ``00-welcome.ipynb``.
    """
    tried = _candidates()
    for folder in tried:
        if (folder / _MARKER).is_file():
            return folder.resolve()
    raise NotFound(
        "mmkit's lessons folder was not found: expected a folder holding "
        f"{_MARKER}, looked in {', '.join(str(p) for p in tried)}; "
        f"fix: run from a clone of the mmkit repository, or set {NOTEBOOKS_ENV}=/path/to/notebooks"
    )


_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _is_root() -> bool:
    # os.geteuid does not exist on Windows, where there is no root to warn about.
    geteuid = getattr(os, "geteuid", None)
    return geteuid is not None and geteuid() == 0


def _value(cmd: list[str], flag: str) -> str:
    """The value of ``--flag VALUE`` or ``--flag=VALUE`` in a command line."""
    for index, arg in enumerate(cmd):
        if arg == flag:
            return cmd[index + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    raise KeyError(flag)


def lab_command(
    root_dir: str | os.PathLike[str],
    *,
    settings_dir: str | os.PathLike[str],
    port: int | None = None,
    ip: str = "127.0.0.1",
    open_browser: bool = True,
    open_path: str = FIRST_LESSON,
) -> list[str]:
    """Build the command line that starts JupyterLab on ``root_dir``, opening ``open_path``.

    The interpreter is the running one (``sys.executable``), so the server and its kernels see
    the same mmkit that is running now. JupyterLab's app settings (where ``overrides.json``
    lives), user settings and layouts ("workspaces") are folders under ``settings_dir``; the
    update check is off. ``--allow-root`` is added only when running as root (containers,
    CI): Jupyter refuses to start as root without it. Authentication is left as JupyterLab
    sets it (a token).

    Args:
        root_dir: the folder JupyterLab serves (its file browser root).
        settings_dir: the folder holding ``app-settings``, ``user-settings``, ``workspaces``.
        port: the port to listen on; ``None`` lets Jupyter pick (8888, then the next free one).
        ip: the address to listen on; loopback by default so the server is not on the network.
        open_browser: open the learner's web browser on the lab's URL.
        open_path: the notebook to open, relative to ``root_dir``.

    Raises:
        InvalidArgument: the port is out of range.
    """
    if port is not None and not 0 <= port <= 65535:
        raise InvalidArgument(f"port {port} is out of range: expected 0..65535 (0 = any free)")
    settings = Path(settings_dir)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--ip", ip]
    cmd += [
        f"--ServerApp.root_dir={os.fspath(root_dir)}",
        f"--LabApp.default_url=/lab/tree/{open_path}",
        f"--LabApp.app_settings_dir={settings / 'app-settings'}",
        f"--LabApp.user_settings_dir={settings / 'user-settings'}",
        f"--LabApp.workspaces_dir={settings / 'workspaces'}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if port is not None:
        cmd += ["--port", str(port)]
    if not open_browser:
        cmd.append("--no-browser")
    if _is_root():
        cmd.append("--allow-root")
    return cmd


@dataclass(frozen=True)
class LabPlan:
    """Everything ``mmkit lab`` will do, worked out before doing any of it."""

    workspace: Path
    """The folder served: the learner's copy of the lessons."""
    source: Path
    """The lessons folder the workspace is filled from."""
    settings_dir: Path
    """JupyterLab's settings and layouts for these lessons (inside the workspace, hidden)."""
    overrides: dict[str, dict[str, Any]]
    """The ``overrides.json`` written into ``settings_dir/app-settings``."""
    command: list[str]
    """The server's command line."""
    warnings: tuple[str, ...] = ()
    """Things to tell the learner before starting (e.g. listening beyond loopback)."""


def _installed_overrides() -> dict[str, dict[str, Any]]:
    """The overrides JupyterLab would read from its own app settings folder (which ours
    replaces): ``overrides.d/*.json`` then ``overrides.json``, merged as JupyterLab does."""
    app_dir = Path(os.environ.get("JUPYTERLAB_DIR") or Path(sys.prefix) / "share/jupyter/lab")
    settings = app_dir / "settings"
    merged: dict[str, dict[str, Any]] = {}
    paths = [*sorted((settings / "overrides.d").glob("*.json")), settings / "overrides.json"]
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for plugin, values in data.items():
            if isinstance(values, dict):
                merged.setdefault(plugin, {}).update(values)
    return merged


def plan_lab(
    workspace: str | os.PathLike[str] | None = None,
    *,
    source: str | os.PathLike[str] | None = None,
    port: int | None = None,
    ip: str = "127.0.0.1",
    open_browser: bool = True,
) -> LabPlan:
    """Work out what ``mmkit lab`` does, without writing a file or starting anything.

    Args:
        workspace: the learner's folder; ``None`` means ``$MMKIT_WORKSPACE`` or
            ``~/mmkit-lessons``.
        source: the lessons folder; ``None`` means :func:`find_notebooks_dir`.
        port, ip, open_browser: as in :func:`lab_command`.

    Raises:
        WorkspaceRefused: the workspace is in a git clone, the lessons folder, the package or
            its Python environment.
        InvalidArgument: the port is out of range.
        NotFound: no lessons folder was found.
    """
    src = Path(source) if source is not None else find_notebooks_dir()
    ws = check_workspace(workspace if workspace is not None else default_workspace(), src)
    settings_dir = ws / STATE_DIR / "lab"
    overrides = _installed_overrides()
    for plugin, values in LAB_OVERRIDES.items():
        overrides.setdefault(plugin, {}).update(values)
    command = lab_command(
        ws, settings_dir=settings_dir, port=port, ip=ip, open_browser=open_browser
    )
    warnings: tuple[str, ...] = ()
    if ip not in _LOOPBACK:
        warnings = (
            f"listening on {ip}: anyone who can reach this machine can try the server, and its "
            "token is all that stops them; for a remote machine prefer loopback and an SSH "
            "tunnel: ssh -L 8888:127.0.0.1:8888 user@host",
        )
    return LabPlan(ws, src.resolve(), settings_dir, overrides, command, warnings)


def prepare(plan: LabPlan) -> SyncReport:
    """Fill the workspace and write the JupyterLab settings the plan names."""
    report = sync_workspace(plan.workspace, plan.source)
    app_settings = plan.settings_dir / "app-settings"
    app_settings.mkdir(parents=True, exist_ok=True)
    (app_settings / "overrides.json").write_text(
        json.dumps(plan.overrides, indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
    return report


def run_lab(
    workspace: str | os.PathLike[str] | None = None,
    *,
    source: str | os.PathLike[str] | None = None,
    port: int | None = None,
    ip: str = "127.0.0.1",
    open_browser: bool = True,
) -> int:
    """Copy the lessons into the workspace and start JupyterLab there, opening lesson 00.

    On POSIX this process *becomes* the server: it keeps the terminal until stopped (Ctrl-C
    twice, or ``jupyter server stop`` from another terminal).

    Args: as in :func:`plan_lab`.

    Returns:
        The server's exit status (only on platforms without ``exec``, i.e. Windows).

    Raises:
        NotFound: JupyterLab is not installed, or no lessons folder was found.
        WorkspaceRefused: see :func:`plan_lab`.
    """
    if importlib.util.find_spec("jupyterlab") is None:
        raise NotFound(
            "JupyterLab is not installed in this Python environment "
            f"({sys.executable}); fix: pip install 'mmkit[lab]'"
        )
    plan = plan_lab(workspace, source=source, port=port, ip=ip, open_browser=open_browser)
    report = prepare(plan)
    for line in report.lines():
        print(f"mmkit lab: {line}")
    print(f"mmkit lab: serving your copy of the lessons in {plan.workspace} (from {plan.source})")
    for line in plan.warnings:
        print(f"mmkit lab: warning: {line}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    # The server's own files (and a kernel's default folder) start in the workspace.
    os.chdir(plan.workspace)
    if os.name != "posix":  # pragma: no cover - Windows has no exec that keeps the console
        return subprocess.call(plan.command)
    # exec: Ctrl-C and signals go straight to the server, and no idle parent stays behind.
    os.execv(plan.command[0], plan.command)
    return 0  # not reached: execv replaced this process (only a test double returns)
