"""The welcome widgets, driven from Python exactly as a click would drive them.

A FigureWidget's saved notebook state misses updates made from Python, so these tests read
the Python objects (``figure.data``, ``figure.layout``), never a rendered or saved notebook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
import pytest

from mmkit import arch
from mmkit.arch import Region
from mmkit.arch.arm64 import CONFIGS as ARM64
from mmkit.errors import InvalidArgument, UnknownName
from mmkit.tables import layout_html
from mmkit.testing import tmp_plugin
from mmkit.viz import layout_figure
from mmkit.widgets import ConfigExplorer, OverlapExercise, check_v7_answer
from mmkit.widgets._base import FIGURE_WIDTH
from mmkit.widgets._sync import plain
from mmkit.widgets.welcome import v7_candidates, v7_flagged


def _plain(fig: go.Figure) -> dict[str, Any]:
    """The figure as data, without the trace uids and the width a live FigureWidget adds."""
    if isinstance(fig, go.FigureWidget):
        assert fig.layout.width == FIGURE_WIDTH
    return plain(fig)


def _title(explorer: ConfigExplorer) -> str:
    return explorer.figure.layout.title.text


@pytest.fixture(scope="module")
def explorer() -> ConfigExplorer:
    return ConfigExplorer("arm64-4k-48")


def test_starts_on_the_requested_configuration(explorer: ConfigExplorer) -> None:
    explorer.select("arm64-4k-48")
    assert isinstance(explorer.figure, go.FigureWidget)
    assert explorer.dropdown.value == "arm64-4k-48"
    assert list(explorer.dropdown.options) == arch.names()
    assert _plain(explorer.figure) == layout_figure(arch.get("arm64-4k-48")).to_dict()


@pytest.mark.parametrize("name", ARM64)
def test_dropdown_change_updates_figure_in_place(explorer: ConfigExplorer, name: str) -> None:
    explorer.select("arm64-4k-48" if name != "arm64-4k-48" else "arm64-64k-42")
    before = _title(explorer)
    figure = explorer.figure
    explorer.dropdown.value = name  # what choosing it in the browser does
    assert explorer.figure is figure  # updated in place, not replaced
    assert _title(explorer) != before
    assert _title(explorer).startswith(f"{name}: kernel VA layout, Linux v5.4")
    # The widget shows exactly the static fallback figure of that configuration.
    assert _plain(explorer.figure) == layout_figure(arch.get(name)).to_dict()
    assert explorer.table.value == layout_html(arch.get(name))
    verdict = "overlap" if arch.get(name).vmalloc_vmemmap_overlap.overlap else "no overlap"
    assert f"V7 test ({name}): {verdict}." in explorer.explanation.value


def test_kernel_and_kasan_pickers(explorer: ConfigExplorer) -> None:
    explorer.select("arm64-4k-48")
    explorer.kernel_picker.value = "v5.3"
    assert explorer.descriptor.kernel == "v5.3"
    assert (
        _plain(explorer.figure) == layout_figure(arch.get("arm64-4k-48", kernel="v5.3")).to_dict()
    )
    assert "V7 test: no overlap" in _title(explorer)  # the pre-flip layout (kernel-facts §3.5)
    explorer.kasan_picker.value = "generic"
    expected = arch.get("arm64-4k-48", kernel="v5.3", kasan="generic")
    assert _plain(explorer.figure) == layout_figure(expected).to_dict()
    assert "KASAN generic" in _title(explorer)
    explorer.kernel_picker.value = "v5.4"
    explorer.kasan_picker.value = "off"
    assert explorer.descriptor.kasan is None and explorer.descriptor.kernel == "v5.4"


def test_refused_combination_keeps_last_figure_and_says_why(explorer: ConfigExplorer) -> None:
    explorer.kernel_picker.value = "v5.4"
    explorer.kasan_picker.value = "generic"
    explorer.select("arm64-4k-48")
    shown = _plain(explorer.figure)
    explorer.select("arm64-16k-48")  # KASAN is impossible on 16K/48
    assert "Not a valid configuration" in explorer.status.value
    assert "16K/48" in explorer.status.value
    assert _plain(explorer.figure) == shown
    assert explorer.descriptor.name == "arm64-4k-48"
    explorer.kasan_picker.value = "off"  # the fix: the error goes, the figure follows
    assert explorer.status.value == ""
    assert _title(explorer).startswith("arm64-16k-48")


def test_select_unknown_name_raises_with_choices(explorer: ConfigExplorer) -> None:
    with pytest.raises(UnknownName, match="arm64-4k-48"):
        explorer.select("arm64-8k-48")


def test_constructor_rejects_bad_input() -> None:
    with pytest.raises(UnknownName):
        ConfigExplorer("x86-4k-48")
    with pytest.raises(UnknownName, match="KASAN"):
        ConfigExplorer(kasan="hw_tags")


def test_static_fallback_and_display(monkeypatch: pytest.MonkeyPatch) -> None:
    explorer = ConfigExplorer("arm64-16k-47", kernel="v6.1")
    static = explorer.static_figure()
    assert type(static) is go.Figure
    assert static.to_dict() == layout_figure(arch.get("arm64-16k-47", kernel="v6.1")).to_dict()
    shown: list[object] = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    explorer._ipython_display_()
    assert shown == [explorer.widget]
    assert explorer.figure in explorer.widget.children


@dataclass(frozen=True)
class _PluginDescriptor:
    """A minimal descriptor from an imaginary plugin, with a region kind mmkit does not know."""

    name: str = "toy-4k-39"
    kernel: str = "v1"
    kasan: None = None
    vmalloc_vmemmap_overlap: None = None

    def macros(self) -> dict[str, int]:
        top = 1 << 64
        return {
            "PAGE_SHIFT": 12,
            "PGDIR_SHIFT": 30,
            "PTRS_PER_PGD": 512,
            "PTRS_PER_PTE": 512,
            "VMALLOC_START": top - (1 << 38),
            "VMALLOC_END": top - (1 << 37),
            "VMEMMAP_START": top - (1 << 37),
        }

    @property
    def regions(self) -> tuple[Region, ...]:
        top = 1 << 64
        return (
            Region("user", "user", 0, 1 << 39),
            Region("linear", "linear", top - (1 << 39), top - (1 << 38)),
            Region("vmalloc", "vmalloc", top - (1 << 38), top - (1 << 37)),
            Region("scratch", "scratch", top - (1 << 37), top),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class _Plugin:
    """An ``mmkit.arch`` plugin offering the toy configuration (no kernel-era option)."""

    api_version: str = "1.0"
    family: str = "toy-widget-test"

    def names(self) -> tuple[str, ...]:
        return ("toywidget-4k-39",)

    def describe(self, name: str) -> str:
        return "a toy for the widget tests"

    def create(self, name: str, **options: Any) -> _PluginDescriptor:
        if name not in self.names():
            raise UnknownName(f"unknown toy configuration {name!r}", choices=self.names())
        if options:
            raise InvalidArgument(f"{name}: unknown option(s) {', '.join(sorted(options))}")
        return _PluginDescriptor(name=name)


def test_explorer_offers_a_plugins_configuration() -> None:
    with tmp_plugin("mmkit.arch", "toywidget", _Plugin()) as report:
        assert report.ok, report
        explorer = ConfigExplorer("arm64-4k-48")
        assert "toywidget-4k-39" in explorer.dropdown.options
        explorer.select("toywidget-4k-39")  # default era and KASAN: no options passed
        assert explorer.status.value == ""
        assert (
            _plain(explorer.figure) == layout_figure(_PluginDescriptor("toywidget-4k-39")).to_dict()
        )
        assert "no V7 overlap report" in explorer.explanation.value
        explorer.kernel_picker.value = "v6.1"  # the toy family has no kernel eras: say so
        assert "unknown option(s) kernel" in explorer.status.value
        explorer.kernel_picker.value = "v5.4"
        assert explorer.status.value == ""
        # The V7 exercise only offers configurations the test applies to.
        assert "toywidget-4k-39" not in OverlapExercise().boxes
        assert not check_v7_answer(["toywidget-4k-39"]).correct


def test_traces_are_replaced_when_a_plugin_brings_new_kinds() -> None:
    explorer = ConfigExplorer("arm64-4k-39")
    toy = _PluginDescriptor()
    explorer._show(toy)
    assert _plain(explorer.figure) == layout_figure(toy).to_dict()
    assert "scratch" in {t.name for t in explorer.figure.data}
    explorer.select("arm64-4k-48")  # and back to the fixed trace set
    assert _plain(explorer.figure) == layout_figure(arch.get("arm64-4k-48")).to_dict()


# ----------------------------------------------------------------------------- exercise
def test_v7_flagged_matches_published_answers() -> None:
    assert v7_flagged("v5.4") == {"arm64-4k-48", "arm64-16k-48"}  # V7 cover letter
    assert v7_flagged("v5.3") == {"arm64-16k-48"}  # Anshuman's reply of 13 Sep 2019


def test_check_v7_answer_feedback() -> None:
    right = check_v7_answer(["arm64-16k-48", "arm64-4k-48"])
    assert right.correct and "Right" in right.message
    half = check_v7_answer({"arm64-4k-48", "arm64-64k-42"})
    assert not half.correct
    assert "you found 1 of 2" in half.message
    assert "1 of your picks is not flagged" in half.message
    assert "1 flagged configuration is missing" in half.message
    assert "arm64-16k-48" not in half.message  # feedback helps, it does not tell
    empty = check_v7_answer([])
    assert not empty.correct and "2 flagged configurations are missing" in empty.message
    typo = check_v7_answer(["arm64-4k-47"])  # a typo, not a configuration
    assert not typo.correct and "arm64-4k-47" in typo.message
    assert check_v7_answer(["arm64-16k-48"], kernel="v5.3").correct


def test_overlap_exercise_button_checks_ticked_boxes() -> None:
    exercise = OverlapExercise()
    assert list(exercise.boxes) == v7_candidates() == list(ARM64)
    exercise.boxes["arm64-4k-48"].value = True
    exercise.button.click()
    assert exercise.last is not None and not exercise.last.correct
    assert "Not yet" in exercise.feedback.value
    exercise.boxes["arm64-16k-48"].value = True
    exercise.button.click()
    assert exercise.last.correct and "Right" in exercise.feedback.value
    # The same check without widgets.
    assert not exercise.check({"arm64-64k-52"}).correct
    assert "✘" in exercise.feedback.value
