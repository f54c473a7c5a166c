"""The Stepper's controls and layout: widgets without behaviour (the Stepper wires them).

One row of move buttons (and, for a race, the thread to run next) that wraps on a narrow
page; one row with the play control, the history slider and the tree's style and colour;
then the error box, the status, the tree (about 520 px tall) and, side by side when there
is room and stacked when not, the pseudo-source and the kernel log, each scrolling inside a
bounded box. Everything fits a 1280x800 JupyterLab window without clipping or overlap.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from mmkit.widgets._stepper_session import AUTO

__all__ = ["COLORS", "STYLES", "StepperControls"]

#: tree styles of :func:`mmkit.viz.tree.tree_figure`
STYLES: tuple[str, ...] = ("icicle", "treemap", "sunburst", "nodelink")
#: tree colourings
COLORS: tuple[str, ...] = ("state", "region")

#: key -> (label, icon, tooltip) of the move buttons, in their order on the page
BUTTONS: dict[str, tuple[str, str, str]] = {
    "step": ("Step", "step-forward", "take the next step"),
    "into": (
        "Step into",
        "level-down",
        "take this coarse step's entries one by one (replays with one step per entry)",
    ),
    "over": ("Step over", "share", "run until this kernel function returns to its caller"),
    "back": ("Back", "step-backward", "one step back (replayed exactly)"),
    "event": ("Run to event", "bug", "run until the kernel logs a report"),
    "end": ("Run to end", "fast-forward", "run until no thread can step"),
    "reset": ("Reset", "undo", "back to the start"),
}


class StepperControls:
    """The widgets of a Stepper, built for ``threads`` (name -> label) and a first style
    and colouring."""

    def __init__(self, threads: dict[str, str], style: str, color: str) -> None:
        self.buttons = {
            key: widgets.Button(
                description=label, icon=icon, tooltip=tip, layout=widgets.Layout(width="auto")
            )
            for key, (label, icon, tip) in BUTTONS.items()
        }
        self.thread_picker: widgets.Dropdown | None = None
        if len(threads) > 1:
            options = [("schedule, then first runnable", AUTO)] + [
                (f"{name}: {label[:40]}", name) for name, label in threads.items()
            ]
            self.thread_picker = widgets.Dropdown(
                options=options,
                value=AUTO,
                description="Next thread",
                style={"description_width": "initial"},
                layout=widgets.Layout(width="auto", max_width="360px"),
            )
        self.slider = widgets.IntSlider(
            value=0,
            min=0,
            max=0,
            description="Step",
            continuous_update=False,
            layout=widgets.Layout(width="360px"),
        )
        self.play = widgets.Play(value=0, min=0, max=0, interval=400, description="Play")
        widgets.jslink((self.play, "value"), (self.slider, "value"))
        self.style_picker = widgets.Dropdown(
            options=list(STYLES),
            value=style,
            description="Tree",
            layout=widgets.Layout(width="190px"),
        )
        self.color_picker = widgets.Dropdown(
            options=list(COLORS),
            value=color,
            description="Colour",
            layout=widgets.Layout(width="170px"),
        )
        self.status = widgets.HTML("")
        self.source = widgets.HTML("", layout=widgets.Layout(flex="1 1 420px", min_width="0"))
        self.log = widgets.HTML("", layout=widgets.Layout(flex="1 1 420px", min_width="0"))

    def layout(self, title: str, figure: widgets.DOMWidget, errors: widgets.Widget) -> widgets.VBox:
        """The whole widget: title, controls, ``errors``, status, ``figure``, source and log."""
        wrap = widgets.Layout(flex_flow="row wrap", align_items="center", grid_gap="4px")
        moves: list[widgets.Widget] = list(self.buttons.values())
        if self.thread_picker is not None:
            moves.append(self.thread_picker)
        history = [self.play, self.slider, self.style_picker, self.color_picker]
        return widgets.VBox(
            [
                widgets.HTML(f"<b>{html.escape(title)}</b>"),
                widgets.HBox(moves, layout=wrap),
                widgets.HBox(history, layout=wrap),
                errors,
                self.status,
                figure,
                widgets.HBox([self.source, self.log], layout=wrap),
            ],
            layout=widgets.Layout(max_width="1200px"),
        )
