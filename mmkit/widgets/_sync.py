"""Bring a live ``FigureWidget`` to what a static figure shows, in place.

A widget keeps one ``go.FigureWidget`` for its whole life (the browser keeps its view and
the learner's zoom) and, on every change, makes it equal to the static figure of the new
state: the figure a notebook without widgets would show. :func:`sync_figure` does that in
one ``batch_update()`` (one message to the browser, one redraw). Traces cannot be added or
removed inside a batch, so when the number or kinds of traces change they are replaced
first.

>>> import plotly.graph_objects as go
>>> live = go.FigureWidget(go.Figure(go.Bar(x=[1], y=[2]), layout={"title": {"text": "a"}}))
>>> sync_figure(live, go.Figure(go.Bar(x=[1, 2], y=[3, 4])))
>>> plain(live) == go.Figure(go.Bar(x=[1, 2], y=[3, 4])).to_dict()
True
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

__all__ = ["plain", "sync_figure"]


def _props(obj: Any) -> dict[str, Any]:
    props = obj.to_plotly_json()
    props.pop("type", None)  # names the trace class: cannot change in place
    props.pop("uid", None)  # belongs to the live widget
    return props


def sync_figure(live: go.FigureWidget, static: go.Figure) -> None:
    """Make ``live`` show exactly ``static`` (traces and layout but the template), in place."""
    olds = [(t.type, _props(t).keys()) for t in live.data]
    if olds != [(t.type, _props(t).keys()) for t in static.data]:
        # other kinds or keys of traces: clearing a key in place would leave an empty
        # container behind, so the traces are replaced (outside the batch, as plotly needs)
        live.data = ()
        live.add_traces(list(static.data))
    with live.batch_update():
        for trace, new in zip(live.data, static.data, strict=True):
            for key, value in _props(new).items():
                trace[key] = value  # assignment replaces the whole subtree
        new_layout = static.layout.to_plotly_json()
        width = live.layout.width  # the widget's own (see mmkit.widgets._base.FIGURE_WIDTH)
        if live.layout.to_plotly_json().keys() - {"width"} != new_layout.keys() - {"width"}:
            live.layout = static.layout
            live.layout.width = width
        else:
            for key, value in new_layout.items():
                if key != "template":
                    live.layout[key] = value


def plain(fig: go.Figure) -> dict[str, Any]:
    """``fig.to_dict()`` without the trace uids a live ``FigureWidget`` adds (to compare a
    widget's figure with a static one)."""
    data = fig.to_dict()
    for trace in data["data"]:
        trace.pop("uid", None)
    if isinstance(fig, go.FigureWidget):  # its width is the widget's, not the figure's
        data["layout"].pop("width", None)
    return data
