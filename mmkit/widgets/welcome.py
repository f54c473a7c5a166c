"""The welcome lesson's configuration explorer: pick a configuration, see its VA layout.

:class:`ConfigExplorer` puts three pickers (configuration, kernel era, KASAN mode) above the
layout figure of :func:`mmkit.viz.layout_figure`, the memory.rst-style table of
:func:`mmkit.tables.layout_html` and the V7 overlap test's explanation. The figure is a
``plotly.graph_objects.FigureWidget`` updated in place (one ``batch_update()`` per change, so
the browser redraws once); its content is always exactly the static figure of the current
configuration, which is what platforms without widgets show instead.

Everything is driven from Python, so tests (and learners) can do what a click does:

>>> explorer = ConfigExplorer("arm64-4k-48")
>>> explorer.select("arm64-64k-48")
>>> explorer.figure.layout.title.text.split("<br>")[0]
'arm64-64k-48: kernel VA layout, Linux v5.4'
>>> explorer.kasan_picker.value = "generic"
>>> explorer.descriptor.kasan
'generic'
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from mmkit import arch
from mmkit.arch import ArchDescriptor
from mmkit.errors import MmkitError, UnknownName
from mmkit.exercises import Feedback
from mmkit.exercises.lesson00 import check_v7_answer, v7_candidates, v7_flagged
from mmkit.tables import layout_html
from mmkit.viz import layout_figure
from mmkit.widgets._base import figure_widget

__all__ = [
    "KASAN_CHOICES",
    "ConfigExplorer",
    "Feedback",
    "OverlapExercise",
    "check_v7_answer",
    "v7_candidates",
    "v7_flagged",
]

#: KASAN picker entries: label -> the ``kasan=`` option of :func:`mmkit.arch.get`.
KASAN_CHOICES: dict[str, str | None] = {"off": None, "generic": "generic", "sw_tags": "sw_tags"}

_DEFAULT = "arm64-4k-48"
_DEFAULT_KERNEL = "v5.4"


def _trace_props(trace: Any) -> dict[str, Any]:
    # `type` names the trace class and cannot be updated; `uid` belongs to the live widget.
    props = trace.to_plotly_json()
    props.pop("type", None)
    props.pop("uid", None)
    return props


class ConfigExplorer:
    """Configuration, kernel-era and KASAN pickers driving a layout figure, table and text.

    Attributes:
        dropdown: the configuration picker (``ipywidgets.Dropdown`` of :func:`mmkit.arch.names`).
        kernel_picker: the kernel era (``ToggleButtons`` of :data:`mmkit.arch.KERNEL_ERAS`).
        kasan_picker: the KASAN mode (``Dropdown``: "off", "generic", "sw_tags").
        figure: the ``plotly.graph_objects.FigureWidget``, updated in place.
        table: ``ipywidgets.HTML`` holding the memory.rst-style layout table.
        explanation: ``ipywidgets.HTML`` with the V7 overlap test's explanation.
        status: ``ipywidgets.HTML``: empty, or why the last choice was refused.
        descriptor: the configuration shown now.
        widget: the container to display (also what ``display(explorer)`` shows).
    """

    def __init__(
        self, name: str | None = None, *, kernel: str = _DEFAULT_KERNEL, kasan: str | None = None
    ) -> None:
        names = arch.names()
        if name is None:
            name = _DEFAULT if _DEFAULT in names else names[0]
        kasan_label = next((k for k, v in KASAN_CHOICES.items() if v == kasan), None)
        if kasan_label is None:
            raise UnknownName(f"unknown KASAN mode {kasan!r}", choices=list(KASAN_CHOICES))
        # Built first so that a bad name or option raises here, before any widget exists.
        options: dict[str, object] = {} if kernel == _DEFAULT_KERNEL else {"kernel": kernel}
        if kasan is not None:
            options["kasan"] = kasan
        self.descriptor: ArchDescriptor = arch.get(name, **options)
        self.dropdown = widgets.Dropdown(options=names, value=name, description="Configuration")
        self.kernel_picker = widgets.ToggleButtons(
            options=list(arch.KERNEL_ERAS), value=kernel, description="Kernel"
        )
        self.kasan_picker = widgets.Dropdown(
            options=list(KASAN_CHOICES), value=kasan_label, description="KASAN"
        )
        for picker in (self.dropdown, self.kernel_picker, self.kasan_picker):
            picker.style.description_width = "initial"
        self.figure = figure_widget(layout_figure(self.descriptor))
        self.table = widgets.HTML(layout_html(self.descriptor))
        self.explanation = widgets.HTML(self._explanation_html(self.descriptor))
        self.status = widgets.HTML("")
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.dropdown, self.kasan_picker]),
                self.kernel_picker,
                self.status,
                self.figure,
                self.explanation,
                widgets.Accordion(
                    children=[self.table], titles=("Layout table (memory.rst)",), selected_index=0
                ),
            ]
        )
        for picker in (self.dropdown, self.kernel_picker, self.kasan_picker):
            picker.observe(self._on_change, names="value")

    # ------------------------------------------------------------------ driving
    def select(self, name: str) -> None:
        """Show configuration ``name``, as choosing it in the dropdown does.

        Raises:
            UnknownName: ``name`` is not a configuration (the message lists the valid ones).
        """
        if name not in self.dropdown.options:
            raise UnknownName(f"unknown configuration {name!r}", choices=self.dropdown.options)
        self.dropdown.value = name

    def static_figure(self) -> go.Figure:
        """The plain figure of the configuration shown now (the fallback without widgets)."""
        return layout_figure(self.descriptor)

    # ----------------------------------------------------------------- updating
    def options(self) -> dict[str, object]:
        """The options the pickers ask for, as :func:`mmkit.arch.get` takes them.

        Only choices that differ from the defaults (the v5.4 era, KASAN off) are passed, so
        a plugin's configuration that knows no kernel eras still shows with the defaults.
        """
        options: dict[str, object] = {}
        if self.kernel_picker.value != _DEFAULT_KERNEL:
            options["kernel"] = self.kernel_picker.value
        if KASAN_CHOICES[self.kasan_picker.value] is not None:
            options["kasan"] = KASAN_CHOICES[self.kasan_picker.value]
        return options

    def _on_change(self, _change: dict[str, Any]) -> None:
        try:
            descriptor = arch.get(self.dropdown.value, **self.options())
        except MmkitError as err:
            # An impossible combination (KASAN on 16K/48): say why, keep showing the last one.
            self.status.value = (
                '<div style="color:#b00020"><b>Not a valid configuration:</b> '
                f"{html.escape(str(err))}</div>"
            )
            return
        self.status.value = ""
        self._show(descriptor)

    def _show(self, descriptor: ArchDescriptor) -> None:
        self.descriptor = descriptor
        static = layout_figure(descriptor)
        fig = self.figure
        if len(fig.data) != len(static.data):
            # A plugin's configuration may bring other region kinds: traces cannot be added
            # inside batch_update(), so replace them first.
            fig.data = ()
            fig.add_traces(list(static.data))
        with fig.batch_update():
            # Assign property by property: assignment replaces a whole subtree (update()
            # would merge into it and keep stale shapes); the template never changes.
            for live, new in zip(fig.data, static.data, strict=True):
                for key, value in _trace_props(new).items():
                    live[key] = value
            for key, value in static.layout.to_plotly_json().items():
                if key != "template":
                    fig.layout[key] = value
        self.table.value = layout_html(descriptor)
        self.explanation.value = self._explanation_html(descriptor)

    @staticmethod
    def _explanation_html(descriptor: ArchDescriptor) -> str:
        report = getattr(descriptor, "vmalloc_vmemmap_overlap", None)
        if report is None:
            return "<p>This configuration has no V7 overlap report.</p>"
        verdict = "overlap" if report.overlap else "no overlap"
        return (
            f"<p><b>V7 test ({html.escape(descriptor.name)}): {verdict}.</b> "
            f"{html.escape(report.explain())}</p>"
        )

    # ------------------------------------------------------------------ display
    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


# --------------------------------------------------------------------------- exercise
class OverlapExercise:
    """An in-kernel check: tick the configurations the V7 test flags, press Check.

    The answer is checked in Python against the engine (:func:`check_v7_answer`), so the
    same check works without widgets: ``exercise.check({"arm64-4k-48"})``.

    >>> exercise = OverlapExercise()
    >>> exercise.boxes["arm64-4k-48"].value = True
    >>> exercise.button.click()
    >>> exercise.last.correct
    False
    """

    def __init__(self, kernel: str = _DEFAULT_KERNEL) -> None:
        self.kernel = kernel
        self.boxes = {
            name: widgets.Checkbox(
                value=False, description=name, indent=False, layout=widgets.Layout(width="auto")
            )
            for name in v7_candidates(kernel)
        }
        self.button = widgets.Button(description="Check", button_style="primary")
        self.feedback = widgets.HTML("")
        self.last: Feedback | None = None
        self.button.on_click(lambda _button: self._on_check())
        self.widget = widgets.VBox(
            [
                widgets.HTML(
                    f"<b>Which configurations does the V7 test flag (Linux {kernel} layout)?</b>"
                ),
                widgets.GridBox(
                    list(self.boxes.values()),
                    layout=widgets.Layout(
                        grid_template_columns="repeat(4, max-content)", grid_gap="0 24px"
                    ),
                ),
                self.button,
                self.feedback,
            ]
        )

    def check(self, answer: Iterable[str]) -> Feedback:
        """Check ``answer`` (configuration names) and show the feedback."""
        self.last = check_v7_answer(answer, self.kernel)
        self.feedback.value = self.last._repr_html_()
        return self.last

    def _on_check(self) -> None:
        self.check(name for name, box in self.boxes.items() if box.value)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
