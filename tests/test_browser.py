"""The welcome lesson in a real JupyterLab, driven in headless Chromium as a learner would.

The test opens 00-welcome.ipynb (see tests/browser_lab.py for the server and the browser),
runs all cells, waits for the explorer's figure, checks that the three exercises are there
unanswered with exercise 00a above the explorer's V7 verdict, picks another configuration in
the explorer's dropdown and checks that the figure's title follows, and that the browser
console stayed free of errors.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.browser_lab import (
    ALL_RAN_OR_ERROR,
    CHROMIUM_ARGS,
    HARMLESS_CONSOLE,
    RUN_ALL_TIMEOUT_MS,
    STDERR,
    UI_TIMEOUT_MS,
    LabServer,
    accept_kernel_dialog,
    chromium_or_fail,
    run_all_cells,
    running_lab,
    wait_for_connected_kernel,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]

#: True when exercise 00a's widget comes before the explorer's verdict in the page.
ASKED_BEFORE_VERDICT = """() => {
    const ask = [...document.querySelectorAll('.jupyter-widgets')]
        .find((el) => el.textContent.includes('Exercise 00a'));
    const verdict = [...document.querySelectorAll('.jupyter-widgets')]
        .find((el) => el.textContent.includes('V7 test ('));
    if (!ask || !verdict) return false;
    return Boolean(ask.compareDocumentPosition(verdict) & Node.DOCUMENT_POSITION_FOLLOWING);
}"""


@pytest.fixture
def lab_server(tmp_path: Path) -> Iterator[LabServer]:
    with running_lab(tmp_path) as server:
        yield server


def test_welcome_notebook_runs_and_explorer_reacts(lab_server: LabServer, tmp_path: Path) -> None:
    executable = chromium_or_fail()
    console_errors: list[str] = []
    ignored: list[str] = []
    page_errors: list[str] = []
    timings: dict[str, float] = {}
    attempts = 0
    t0 = time.monotonic()

    def on_console(msg) -> None:  # type: ignore[no-untyped-def]
        if msg.type != "error":
            return
        text = msg.text
        (ignored if any(p.search(text) for p in HARMLESS_CONSOLE) else console_errors).append(
            f"{text} @ {msg.location.get('url', '')}"
        )

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT_MS)
            page.on("console", on_console)
            page.on("pageerror", lambda err: page_errors.append(str(err)))
            try:
                page.goto(f"{lab_server.url}/lab/tree/00-welcome.ipynb")
                page.wait_for_selector(".jp-Notebook .jp-Cell")
                # The indicator says "idle" before the page has connected to the kernel; a
                # run before that opens a "Select Kernel" dialog. Wait for the connection.
                wait_for_connected_kernel(lab_server, "00-welcome.ipynb")
                page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
                accept_kernel_dialog(page)
                timings["open notebook, kernel idle"] = time.monotonic() - t0

                t = time.monotonic()
                attempts = run_all_cells(page)
                # Every code cell has run when each prompt shows an execution count ("[7]:");
                # the kernel's status alone blinks "idle" between the cells of a Run All. A
                # cell that fails stops Run All: then stop waiting and report its traceback.
                page.wait_for_function(ALL_RAN_OR_ERROR, timeout=RUN_ALL_TIMEOUT_MS)
                failed = page.locator(f".jp-OutputArea-output[data-mime-type='{STDERR}']")
                assert failed.count() == 0, "a cell failed or wrote to stderr:\n" + "\n".join(
                    failed.all_inner_texts()
                )
                timings["run all cells, figure drawn"] = time.monotonic() - t
                # The explorer's figure is a FigureWidget inside the ipywidgets output.
                title = page.locator(".jupyter-widgets .js-plotly-plot .gtitle").first
                title.wait_for(state="visible")
                assert title.text_content().startswith("arm64-4k-48: kernel VA layout")
                # The static fallback figure and the three exercises rendered too, none
                # answered by Run All, and 00a's question stands above the explorer's verdict.
                assert page.locator(".js-plotly-plot").count() == 2
                checks = page.locator(".jupyter-widgets button").filter(has_text="Check")
                assert checks.count() == 3
                assert page.get_by_text("Error displaying widget").count() == 0
                widgets_text = "".join(page.locator(".jupyter-widgets").all_inner_texts())
                assert "✔" not in widgets_text and "✘" not in widgets_text
                assert page.evaluate(ASKED_BEFORE_VERDICT), "00a is below the V7 verdict"

                t = time.monotonic()
                dropdown = page.locator(".widget-dropdown").filter(has_text="Configuration")
                dropdown.locator("select").select_option("arm64-64k-48")
                page.wait_for_function(
                    """(name) => {
                        const sel = '.jupyter-widgets .js-plotly-plot .gtitle';
                        const title = document.querySelector(sel);
                        return title !== null && title.textContent.startsWith(name);
                    }""",
                    arg="arm64-64k-48",
                    timeout=UI_TIMEOUT_MS,
                )
                timings["dropdown change, figure updated"] = time.monotonic() - t
                assert "no overlap" in title.text_content()
            except Exception:
                shot = tmp_path / "failure.png"
                with contextlib.suppress(Exception):
                    page.screenshot(path=str(shot), full_page=True)
                print(f"screenshot: {shot}\nserver log:\n{lab_server.log_tail()}")
                raise
        finally:
            browser.close()

    timings["total"] = time.monotonic() - t0
    print(
        "browser timings: "
        + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
        + f" (Run All clicked {attempts}x)"
    )
    if ignored:
        print(f"ignored {len(ignored)} known-harmless console errors: {ignored}")
    assert not page_errors, f"uncaught errors in the page: {page_errors}"
    assert not console_errors, f"console errors: {console_errors}"
