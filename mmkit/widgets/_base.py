"""What every mmkit widget shares: callbacks whose errors are shown, never lost.

ipywidgets swallows an exception raised in an ``on_click`` or ``observe`` handler: in
JupyterLab it goes to the log console, where no learner looks, and the button seems dead.
Every handler of an mmkit widget therefore runs through :meth:`ErrorPane.guard`: an
exception is logged (``logging.getLogger("mmkit.widgets")``), kept in ``errors``, and shown
in the widget itself as a red box with the traceback's last line (a :class:`MmkitError`
shows its message alone, since it is written for the learner).

>>> pane = ErrorPane()
>>> handler = pane.guard(lambda: 1 // 0)
>>> handler()
>>> pane.errors[-1].__class__.__name__, "ZeroDivisionError" in pane.widget.value
('ZeroDivisionError', True)
>>> pane.clear(); pane.widget.value
''
"""

from __future__ import annotations

import functools
import html
import logging
import traceback
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from mmkit.errors import MmkitError
from mmkit.widgets._startup import import_jsonschema_without_iri_grammar

import_jsonschema_without_iri_grammar()  # before the first FigureWidget (see its module)

__all__ = ["FIGURE_WIDTH", "ErrorPane", "figure_widget", "hex_or_dash"]

#: Width (px) of a widget's figure. A ``FigureWidget`` is drawn before JupyterLab has laid
#: out its output area, falls back to plotly.js's 700 px default and never grows (checked
#: in JupyterLab 4 with plotly 6); so widgets give theirs a width that fills a notebook's
#: 848 px output area at 1280 px with the file browser open.
FIGURE_WIDTH = 840

log = logging.getLogger("mmkit.widgets")


class ErrorPane:
    """A red box under a widget's controls that shows what a callback raised."""

    def __init__(self) -> None:
        self.widget = widgets.HTML(value="")
        self.errors: list[BaseException] = []

    def clear(self) -> None:
        self.widget.value = ""

    def show(self, err: BaseException) -> None:
        """Record ``err``, log it with its traceback and show it in the widget."""
        self.errors.append(err)
        log.error("mmkit widget callback failed", exc_info=err)
        if isinstance(err, MmkitError):
            text = str(err)
        else:
            last = traceback.format_exception_only(type(err), err)[-1].strip()
            text = f"internal error in a widget callback: {last}"
        self.widget.value = (
            '<div class="mmkit-error" style="border:1px solid #c62828;background:#fdecea;'
            f'color:#8e0000;padding:4px 8px;border-radius:4px">{html.escape(text)}</div>'
        )

    def guard(self, fn: Callable[..., Any]) -> Callable[..., None]:
        """``fn`` wrapped so that what it raises is shown here instead of being lost.

        A successful call clears an earlier error."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> None:
            try:
                fn(*args, **kwargs)
            except Exception as err:  # shown and logged, never lost
                self.show(err)
            else:
                self.clear()

        return wrapper


def figure_widget(fig: go.Figure) -> go.FigureWidget:
    """A ``FigureWidget`` of ``fig`` that is :data:`FIGURE_WIDTH` wide (unless ``fig`` sets
    a width of its own)."""
    live = go.FigureWidget(fig)
    if fig.layout.width is None:
        live.layout.width = FIGURE_WIDTH
    return live


def hex_or_dash(value: int | None) -> str:
    """An address as a person reads it: ``0x``-prefixed hex, or an em dash for none.

    >>> hex_or_dash(0xffff000040000000), hex_or_dash(None)
    ('0xffff000040000000', '—')
    """
    return "—" if value is None else f"{value:#x}"
