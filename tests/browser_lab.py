"""A real JupyterLab and Debian's Chromium for the browser tests (tests/test_browser*.py).

A throwaway JupyterLab (authentication off, bound to 127.0.0.1, news and update checks off)
serves a temporary copy of notebooks/; Playwright drives Debian's Chromium (never a browser
that Playwright downloads: there is none here).

Needs /usr/bin/chromium (``apt-get install chromium``; .ci/run installs it) or
``MMKIT_CHROMIUM=/path/to/chromium``: without one the test fails, it does not skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CHROMIUM = os.environ.get("MMKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # This machine has no network but package registries: stop Chromium's own calls home.
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

#: JupyterLab settings for the test server: no news feed, no update check, no prompts.
OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {
        "checkForUpdates": False,
        "fetchNews": "false",
    },
    # JupyterLab renders only the cells near the viewport ("full" windowing) and drops the
    # others from the page; a test that finds a widget by its controls needs every cell there
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}

#: Console errors that are not errors of the page under test, each with why it is harmless.
#: Empty on purpose: with the flags and settings above, a full run of the welcome lesson logs
#: only two "debug" lines (workspace start, kernel WebSocket) and no error at all. Add a
#: pattern here only for noise seen and understood, with its reason, never to hide a failure.
HARMLESS_CONSOLE: tuple[re.Pattern[str], ...] = ()

SERVER_START_TIMEOUT = 90  # s: a cold JupyterLab start on 2 cores takes ~5 s
RUN_ALL_TIMEOUT_MS = 120_000  # executing every cell of the welcome lesson
UI_TIMEOUT_MS = 60_000  # one UI step (open, menu, render)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LabServer:
    """A JupyterLab server this test started (and will stop)."""

    url: str
    process: subprocess.Popen[bytes]
    runtime_dir: Path
    log: Path
    started: float = field(default_factory=time.monotonic)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]


def _kernel_pids(runtime_dir: Path) -> list[int]:
    """Processes (kernels) started with a connection file in this server's runtime dir."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            if str(runtime_dir).encode() in cmdline:
                pids.append(int(proc.name))
    return pids


def _stop(server: LabServer) -> None:
    """SIGTERM lets Jupyter shut its kernels down; whatever is left gets SIGKILL, by pid."""
    proc = server.process
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group we created for the server
            proc.wait(timeout=10)
    for pid in _kernel_pids(server.runtime_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def running_lab(tmp_path: Path) -> Iterator[LabServer]:
    """Start JupyterLab on a copy of notebooks/ under ``tmp_path``; stop it (and its
    kernels) on exit."""
    lessons = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, lessons, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    app_settings = tmp_path / "app-settings"
    app_settings.mkdir()
    (app_settings / "overrides.json").write_text(json.dumps(OVERRIDES), encoding="utf-8")
    runtime_dir = tmp_path / "runtime"
    env = {
        **os.environ,
        # Keep the server off the developer's own Jupyter config, settings and workspaces.
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(runtime_dir),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "user-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
    }
    port = free_port()
    log = tmp_path / "jupyter-lab.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--allow-root",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--port-retries=0",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        f"--ServerApp.root_dir={lessons}",
        f"--LabApp.app_settings_dir={app_settings}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            cmd,
            cwd=lessons,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so cleanup can reach it all
        )
    server = LabServer(f"http://127.0.0.1:{port}", process, runtime_dir, log)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited with {process.returncode}:\n{server.log_tail()}")
            try:
                with urllib.request.urlopen(f"{server.url}/api/status", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"jupyter lab did not answer in {SERVER_START_TIMEOUT}s:\n{server.log_tail()}"
                )
            time.sleep(0.25)
        yield server
    finally:
        _stop(server)


def wait_for_connected_kernel(server: LabServer, notebook: str, timeout: float = 60) -> None:
    """Poll the REST API until the notebook's kernel is idle with a browser connected."""
    deadline = time.monotonic() + timeout
    seen: object = None
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{server.url}/api/sessions", timeout=5) as response:
            seen = json.loads(response.read())
        for session in seen:  # type: ignore[union-attr]
            kernel = session.get("kernel") or {}
            if (
                session.get("path", "").endswith(notebook)
                and kernel.get("execution_state") == "idle"
                and kernel.get("connections", 0) >= 1
            ):
                return
        time.sleep(0.25)
    pytest.fail(
        f"no connected idle kernel for {notebook} after {timeout}s: {seen}\n{server.log_tail()}"
    )


def accept_kernel_dialog(page) -> None:  # type: ignore[no-untyped-def]
    """Accept a "Select Kernel" dialog (Python 3) as a learner would, if one is open."""
    dialog = page.locator(".jp-Dialog").filter(has_text="Select Kernel")
    if dialog.count():
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
        dialog.wait_for(state="detached")


STDERR = "application/vnd.jupyter.stderr"  # JupyterLab renders tracebacks with this type too

ALL_RAN_OR_ERROR = f"""() => {{
    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
    const ran = prompts.length > 0 && prompts.every((p) => /\\[\\d+\\]/.test(p.textContent));
    const failed = document.querySelector(".jp-OutputArea-output[data-mime-type='{STDERR}']");
    return ran || failed !== null;
}}"""

ANY_CELL_STARTED = """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
    .some((p) => /\\[(\\*|\\d+)\\]/.test(p.textContent))"""


def run_all_cells(page, attempts: int = 3) -> int:  # type: ignore[no-untyped-def]
    """Run → Run All Cells, as a learner does; returns how many clicks it took.

    If the page's session has not attached its kernel yet (a race of the first seconds, worst
    on a loaded machine), JupyterLab runs no cell at all, or asks which kernel to use: the
    prompts stay "[ ]". A learner would click again; so does this, at most ``attempts`` times.
    """
    for attempt in range(1, attempts + 1):
        accept_kernel_dialog(page)
        page.locator("li.lm-MenuBar-item").filter(has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-item").filter(has_text=re.compile(r"^Run All Cells")).first.click()
        try:
            page.wait_for_function(ANY_CELL_STARTED, timeout=20_000)
            return attempt
        except PlaywrightTimeout:
            print(f"Run All Cells #{attempt}: no cell started within 20 s")
    pytest.fail(f"Run All Cells started no cell in {attempts} attempts")


def chromium_or_fail() -> str:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the browser test needs Debian's chromium "
            "(`apt-get install -y --no-install-recommends chromium`, as .ci/run does) or "
            "MMKIT_CHROMIUM=/path/to/chromium. Never `playwright install` here."
        )
    return CHROMIUM


def open_and_run_all(  # type: ignore[no-untyped-def]
    page, server: LabServer, notebook: str, *, path: str | None = None, timeout_ms: int = 240_000
) -> None:
    """Open ``notebook`` (at ``path`` under the server, default ``/lab/tree/<notebook>``),
    wait for its kernel, Run All as a learner does, and fail with the tracebacks if a cell
    failed or wrote to stderr."""
    page.goto(f"{server.url}{path or f'/lab/tree/{notebook}'}")
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    wait_for_connected_kernel(server, notebook)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    accept_kernel_dialog(page)
    run_all_cells(page)
    page.wait_for_function(ALL_RAN_OR_ERROR, timeout=timeout_ms)
    failed = page.locator(f".jp-OutputArea-output[data-mime-type='{STDERR}']")
    assert failed.count() == 0, "a cell failed or wrote to stderr:\n" + "\n".join(
        failed.all_inner_texts()
    )
