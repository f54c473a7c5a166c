"""Every widget in a real JupyterLab, clicked in headless Chromium as a learner would.

The test opens notebooks/90-toolkit-tour.ipynb (every view and widget of the kit) in a
throwaway JupyterLab (tests/browser_lab.py), runs all cells, then in each widget clicks what a
learner clicks first and checks that the widget's figure changed in the page:

* ``Stepper``: *Run to end* (the hot-remove frees table pages: the tree's colours change);
* ``RaceExplorer``: *Step P* (the swimlane gains a step);
* ``PolicyComparison``: the ``rodata_full`` box (every policy re-runs: the chart changes);
* ``MemblockOrder``: *To next kernel event* (the frame jumps to the BUG: the figures change).

The browser console must stay free of errors. Screenshots at 1280x800 of the whole notebook
and of each widget after its click (scrolled to its top) are saved under
``test-artifacts/browser/`` (or
``$MMKIT_ARTIFACTS``) for a person to look at.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.browser_lab import (
    CHROMIUM_ARGS,
    HARMLESS_CONSOLE,
    ROOT,
    UI_TIMEOUT_MS,
    LabServer,
    chromium_or_fail,
    open_and_run_all,
    running_lab,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(540)]

NOTEBOOK = "90-toolkit-tour.ipynb"
RUN_ALL_TIMEOUT_MS = 240_000  # the tour runs every scenario once
VIEWPORT = {"width": 1280, "height": 800}

#: The first plotly figure's data in a widget's output, as a string to compare.
_FIGURE_DATA = """(el) => {
    const plot = el.querySelector('.js-plotly-plot');
    if (!plot || !plot.data) return null;
    return JSON.stringify(plot.data.map((t) => [t.ids, t.x, t.y, t.labels,
        t.marker && (t.marker.colors || t.marker.color)]));
}"""

#: (widget, the text of the control to click, the control's element: a button, or the
#: label around a checkbox)
CLICKS = (
    ("stepper", "Run to end", "button"),
    ("race explorer", "Step P (ptdump)", "button"),
    ("policy comparison", "rodata_full (page-granular linear map)", "label"),
    ("memblock order", "To next kernel event", "button"),
)


def _artifacts() -> Path:
    out = Path(os.environ.get("MMKIT_ARTIFACTS", ROOT / "test-artifacts")) / "browser"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
def lab_server(tmp_path: Path) -> Iterator[LabServer]:
    with running_lab(tmp_path) as server:
        yield server


def _screenshots(page, out: Path) -> list[Path]:  # type: ignore[no-untyped-def]
    """Scroll the notebook from top to bottom, one 1280x800 screenshot per screen."""
    panel = page.locator(".jp-WindowedPanel-outer").first
    shots = []
    y = 0
    while y < panel.evaluate("(e) => e.scrollHeight") and len(shots) < 60:
        panel.evaluate(f"(e) => {{ e.scrollTop = {y}; }}")
        page.wait_for_timeout(700)
        shot = out / f"tour-{len(shots):02d}.png"
        page.screenshot(path=str(shot))
        shots.append(shot)
        y += 700
    return shots


def test_every_widget_reacts_to_a_click_in_jupyterlab(lab_server: LabServer) -> None:
    executable = chromium_or_fail()
    out = _artifacts()
    console_errors: list[str] = []
    page_errors: list[str] = []
    changed: dict[str, float] = {}
    t0 = time.monotonic()

    def on_console(msg) -> None:  # type: ignore[no-untyped-def]
        if msg.type == "error" and not any(p.search(msg.text) for p in HARMLESS_CONSOLE):
            console_errors.append(f"{msg.text} @ {msg.location.get('url', '')}")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(UI_TIMEOUT_MS)
            page.on("console", on_console)
            page.on("pageerror", lambda err: page_errors.append(str(err)))
            try:
                open_and_run_all(page, lab_server, NOTEBOOK, timeout_ms=RUN_ALL_TIMEOUT_MS)
                assert page.get_by_text("Error displaying widget").count() == 0
                shots = _screenshots(page, out)
                assert shots

                for name, label, kind in CLICKS:
                    text = re.compile(rf"^\s*{re.escape(label)}\s*$")
                    controls = page.locator(kind).filter(has_text=text)
                    output = page.locator(".jp-OutputArea-output").filter(has=controls).first
                    control = output.locator(kind).filter(has_text=text).first
                    output.scroll_into_view_if_needed()
                    output.locator(".js-plotly-plot").first.wait_for(state="visible")
                    before = output.evaluate(_FIGURE_DATA)
                    assert before is not None, f"{name}: no figure drawn"
                    t = time.monotonic()
                    control.click()
                    page.wait_for_function(
                        f"([el, before]) => ({_FIGURE_DATA})(el) !== before",
                        arg=[output.element_handle(), before],
                        timeout=UI_TIMEOUT_MS,
                    )
                    changed[name] = time.monotonic() - t
                    page.wait_for_timeout(500)
                    output.evaluate("(el) => el.scrollIntoView({block: 'start'})")
                    page.wait_for_timeout(300)
                    page.screenshot(path=str(out / f"widget-{name.replace(' ', '-')}.png"))
                # no widget shows an error box after its click
                assert page.locator(".mmkit-error").count() == 0, page.locator(
                    ".mmkit-error"
                ).all_inner_texts()
            except Exception:
                with contextlib.suppress(Exception):
                    page.screenshot(path=str(out / "failure.png"), full_page=True)
                print(f"screenshots in {out}\nserver log:\n{lab_server.log_tail()}")
                raise
        finally:
            browser.close()

    print(
        f"tour: {time.monotonic() - t0:.1f}s; figure changed after the click in "
        + ", ".join(f"{k} {v:.1f}s" for k, v in changed.items())
        + f"; screenshots in {out}"
    )
    assert set(changed) == {name for name, _, _ in CLICKS}
    assert not page_errors, f"uncaught errors in the page: {page_errors}"
    assert not console_errors, f"console errors: {console_errors}"
