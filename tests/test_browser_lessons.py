"""Every lesson runs in a real JupyterLab in headless Chromium, its widgets drawn.

One throwaway JupyterLab (tests/browser_lab.py) serves a copy of notebooks/; for each lesson
the test opens it, runs all cells as a learner does, and checks that no cell failed, that
every widget rendered (no "Error displaying widget"), that its plotly figures were drawn,
that its exercises' Check buttons are there with no verdict shown yet (running all cells
submits nothing), and that the browser console stayed free of errors. A screenshot of the
first screen of each lesson is saved under ``test-artifacts/browser/`` (or
``$MMKIT_ARTIFACTS``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.browser_lab import (
    CHROMIUM_ARGS,
    HARMLESS_CONSOLE,
    NOTEBOOKS,
    ROOT,
    UI_TIMEOUT_MS,
    LabServer,
    chromium_or_fail,
    open_and_run_all,
    running_lab,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

LESSONS = sorted(p.name for p in NOTEBOOKS.glob("[0-8][0-9]-*.ipynb"))
RUN_ALL_TIMEOUT_MS = 240_000


@pytest.fixture(scope="module")
def lab() -> Iterator[LabServer]:
    with tempfile.TemporaryDirectory() as tmp, running_lab(Path(tmp)) as server:
        yield server


def _artifacts() -> Path:
    out = Path(os.environ.get("MMKIT_ARTIFACTS", ROOT / "test-artifacts")) / "browser"
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_there_are_lessons_to_open() -> None:
    assert "00-welcome.ipynb" in LESSONS and len(LESSONS) >= 2


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_runs_in_jupyterlab_with_its_widgets(lab: LabServer, lesson: str) -> None:
    executable = chromium_or_fail()
    console_errors: list[str] = []
    page_errors: list[str] = []
    t0 = time.monotonic()

    def on_console(msg) -> None:  # type: ignore[no-untyped-def]
        if msg.type == "error" and not any(p.search(msg.text) for p in HARMLESS_CONSOLE):
            console_errors.append(f"{msg.text} @ {msg.location.get('url', '')}")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(UI_TIMEOUT_MS)
            page.on("console", on_console)
            page.on("pageerror", lambda err: page_errors.append(str(err)))
            try:
                # a workspace of its own, reset: no tab of an earlier lesson comes back
                open_and_run_all(
                    page,
                    lab,
                    lesson,
                    path=f"/lab/workspaces/{lesson[:2]}/tree/{lesson}?reset",
                    timeout_ms=RUN_ALL_TIMEOUT_MS,
                )
                page.wait_for_selector(".js-plotly-plot")
                page.wait_for_timeout(1500)  # the last widgets render after the last cell ran
                assert page.get_by_text("Error displaying widget").count() == 0
                assert page.locator(".mmkit-error").count() == 0
                # no exercise answered by Run All: Check buttons there, no verdict shown
                checks = page.locator(".jupyter-widgets button").filter(has_text="Check")
                verdicts = page.locator(".jupyter-widgets").filter(has_text="✔")
                if lesson != "00-welcome.ipynb":
                    assert checks.count() >= 3, f"{lesson}: fewer than 3 exercises on screen"
                assert verdicts.count() == 0, f"{lesson}: a verdict is shown after Run All"
                page.locator(".jp-WindowedPanel-outer").first.evaluate("(e) => e.scrollTop = 0")
                page.wait_for_timeout(500)
                page.screenshot(path=str(_artifacts() / f"lesson-{lesson[:2]}.png"))
            except Exception:
                with contextlib.suppress(Exception):
                    page.screenshot(path=str(_artifacts() / f"failure-{lesson[:2]}.png"))
                print(f"server log:\n{lab.log_tail()}")
                raise
        finally:
            browser.close()
    print(f"{lesson}: opened and run in {time.monotonic() - t0:.1f}s")
    assert not page_errors, f"uncaught errors in the page: {page_errors}"
    assert not console_errors, f"console errors: {console_errors}"
