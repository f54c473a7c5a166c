"""Start JupyterLab on mmkit's lessons: the function behind ``mmkit lab``.

``lab_command`` only builds the command line (so it can be tested without starting a server);
``run_lab`` finds the lessons folder, checks that JupyterLab is installed and replaces the
current process with the server. The server keeps JupyterLab's own token: ``mmkit lab`` never
turns authentication off (only the browser tests do, on a throwaway server).

>>> cmd = lab_command("/lessons", port=8899, open_browser=False)
>>> cmd[1:4]
['-m', 'jupyter', 'lab']
>>> cmd[cmd.index("--notebook-dir") + 1], cmd[cmd.index("--port") + 1], "--no-browser" in cmd
('/lessons', '8899', True)
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from mmkit.errors import InvalidArgument, NotFound

__all__ = ["NOTEBOOKS_ENV", "find_notebooks_dir", "lab_command", "run_lab"]

#: Environment variable that points ``mmkit lab`` at another lessons folder.
NOTEBOOKS_ENV = "MMKIT_NOTEBOOKS"

# The welcome lesson marks a folder as mmkit's lessons folder (and not any "notebooks/").
_MARKER = "00-welcome.ipynb"


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


def _is_root() -> bool:
    # os.geteuid does not exist on Windows, where there is no root to warn about.
    geteuid = getattr(os, "geteuid", None)
    return geteuid is not None and geteuid() == 0


def lab_command(
    notebook_dir: str | os.PathLike[str],
    *,
    port: int | None = None,
    ip: str = "127.0.0.1",
    open_browser: bool = True,
) -> list[str]:
    """Build the command line that starts JupyterLab on ``notebook_dir``.

    The interpreter is the running one (``sys.executable``), so the server and its kernels see
    the same mmkit that is running now. ``--allow-root`` is added only when running as root
    (containers, CI): Jupyter refuses to start as root without it.

    Args:
        notebook_dir: the folder JupyterLab opens (its file browser root).
        port: the port to listen on; ``None`` lets Jupyter pick (8888, then the next free one).
        ip: the address to listen on; loopback by default so the server is not on the network.
        open_browser: open the learner's web browser on the lab's URL.

    Raises:
        InvalidArgument: the port is out of range.
    """
    if port is not None and not 0 <= port <= 65535:
        raise InvalidArgument(f"port {port} is out of range: expected 0..65535 (0 = any free)")
    cmd = [sys.executable, "-m", "jupyter", "lab", "--ip", ip]
    cmd += ["--notebook-dir", os.fspath(notebook_dir)]
    if port is not None:
        cmd += ["--port", str(port)]
    if not open_browser:
        cmd.append("--no-browser")
    if _is_root():
        cmd.append("--allow-root")
    return cmd


def run_lab(
    notebook_dir: str | os.PathLike[str] | None = None,
    *,
    port: int | None = None,
    ip: str = "127.0.0.1",
    open_browser: bool = True,
) -> int:
    """Start JupyterLab on mmkit's lessons; on POSIX this process *becomes* the server.

    Args:
        notebook_dir: the lessons folder; ``None`` means :func:`find_notebooks_dir`.
        port, ip, open_browser: as in :func:`lab_command`.

    Returns:
        The server's exit status (only on platforms without ``exec``, i.e. Windows).

    Raises:
        NotFound: JupyterLab is not installed, or the lessons folder does not exist.
    """
    if importlib.util.find_spec("jupyterlab") is None:
        raise NotFound(
            "JupyterLab is not installed in this Python environment "
            f"({sys.executable}); fix: pip install 'mmkit[lab]'"
        )
    folder = Path(notebook_dir) if notebook_dir is not None else find_notebooks_dir()
    if not folder.is_dir():
        raise NotFound(f"lessons folder {folder} does not exist; fix: pass an existing folder")
    cmd = lab_command(folder, port=port, ip=ip, open_browser=open_browser)
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name != "posix":  # pragma: no cover - Windows has no exec that keeps the console
        return subprocess.call(cmd)
    # exec: Ctrl-C and signals go straight to the server, and no idle parent stays behind.
    os.execv(cmd[0], cmd)
    return 0  # not reached: execv replaced this process (only a test double returns)
