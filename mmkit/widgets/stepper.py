"""Step a kernel operation, or one interleaving of a race, and watch the page tables change.

:class:`Stepper` takes a race (:class:`~mmkit.scenarios.races.Race`, optionally with a
schedule such as ``"H H P H"``) or a factory of one operation (``() -> (machine,
generator)``), and shows:

* the controls, every one also a method: **Step** (:meth:`Stepper.step`), **Step into** a
  coarse step (:meth:`~Stepper.step_into`), **Step over** (:meth:`~Stepper.step_over`),
  **Back** (:meth:`~Stepper.back`), **Run to event** (:meth:`~Stepper.run_to_event`),
  **Run to end** (:meth:`~Stepper.run_to_end`), **Reset** (:meth:`~Stepper.reset`), a
  history slider with a play control (:meth:`~Stepper.goto`), for a race the thread to run
  next (:meth:`~Stepper.pick`), and the tree's style and colour
  (:meth:`~Stepper.set_style`, :meth:`~Stepper.set_color`);
* the step just taken and the next one (``Step.describe()``, addresses in hex), and for a
  race each thread's state (runnable, blocked on which lock, done);
* the page-table tree (:func:`mmkit.viz.tree.tree_figure`) as a ``FigureWidget`` updated in
  place, coloured by state against the machine as the scenario started, so table pages
  added and freed show;
* the kernel function of the next step with its pseudo-source (:mod:`mmkit.kernel_source`)
  and the current line highlighted, beside the kernel log (new reports highlighted).

**How moves work** (:mod:`mmkit.widgets._stepper_session`): the scenario runs on a
:class:`~mmkit.sched.Scheduler` (one thread for one operation), so going back, or to any
step on the slider, replays the schedule from the factory: exact, and the same mechanism
for an operation and a race. **Step into** cannot stop inside a coarse step (the engine
performs its run of entries at once); it rebuilds the scenario with one step per entry
(``machine.fine = True``) and replays it to the same point
(:mod:`mmkit.widgets._stepper_fine`), after which every step is an entry; Reset goes back
to coarse steps. **Step over** runs until the next step's kernel function returns to its
caller (read from the threads' generator chains) or a kernel event is recorded.

Every handler runs through :class:`~mmkit.widgets._base.ErrorPane`: what it raises is shown
in the widget, and the widget keeps working.

>>> from mmkit.scenarios.races import ptdump_race
>>> s = Stepper(ptdump_race("arm64-4k-48", "naive"), schedule="P P H")
>>> s.step().describe()[:32]
'walk_pgd: pgd = READ_ONCE(*pgdp)'
>>> _ = s.step(); s.position, s.session.history[-1].thread
(2, 'P')
>>> s.back(); s.position, s.slider.max
(1, 2)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from mmkit.errors import InvalidArgument
from mmkit.events import Step
from mmkit.machine import Machine
from mmkit.widgets._base import ErrorPane, figure_widget
from mmkit.widgets._source import source_html
from mmkit.widgets._stepper_controls import COLORS, STYLES, StepperControls
from mmkit.widgets._stepper_panes import PANE, log_html, status_html
from mmkit.widgets._stepper_scenarios import (
    hot_add_scenario,
    hot_remove_scenario,
    operation_factory,
)
from mmkit.widgets._stepper_session import AUTO, Factory, StepSession, fine_factory

__all__ = ["COLORS", "STYLES", "Stepper", "step_latencies"]


#: step actions that change no page table and record no event by themselves: after one, the
#: tree is not redrawn (an event recorded by any step redraws it)
_INERT = frozenset({"read", "tlbi", "lock", "unlock", "memblock", "device", "sysfs"})


class Stepper:
    """Step a race or one kernel operation (see the module docstring).

    Args:
        target: a :class:`~mmkit.scenarios.races.Race`, or a factory ``() -> (machine,
            generator)`` of one operation (or ``() -> (machine, [Thread, ...])``).
        schedule: threads to run, in order (``"H H P"`` or a list): followed by Step and
            the runs, then any runnable thread.
        thread: the thread name of a one-operation factory.
        title: the heading (default: the race's name and description, or the operation).
        style, color: the tree's first style and colouring.

    Attributes:
        session: the :class:`~mmkit.widgets._stepper_session.StepSession` (scheduler, plan).
        figure: the page-table tree, a ``go.FigureWidget``.
        step_button, into_button, over_button, back_button, event_button, end_button,
        reset_button: the controls; slider, play: the history; thread_picker (races),
        style_picker, color_picker.
        status, source, log: HTML panes; errors: the :class:`ErrorPane`.
        widget: the container to display.
    """

    def __init__(
        self,
        target: Any,
        *,
        schedule: str | Iterable[str] | None = None,
        thread: str = "K",
        title: str | None = None,
        style: str = "icicle",
        color: str = "state",
    ) -> None:
        if style not in STYLES:
            raise InvalidArgument(f"unknown tree style {style!r}", choices=STYLES)
        if color not in COLORS:
            raise InvalidArgument(f"unknown tree colouring {color!r}", choices=COLORS)
        if hasattr(target, "make") and hasattr(target, "threads"):  # a Race
            factory: Factory = target.make
            heading = title or f"{target.name}: {target.description}"
        elif callable(target):
            factory = operation_factory(target, thread)
            heading = title or ""
        else:
            raise InvalidArgument(
                f"Stepper takes a Race or a factory () -> (machine, generator), not "
                f"{type(target).__name__}"
            )
        self.session = StepSession(factory, schedule=schedule, fine=fine_factory(factory))
        self.threads = {t.name: t.label for t in self.session.sched.threads.values()}
        if not heading:
            heading = "; ".join(self.threads.values())
        self.title = heading
        self._style, self._color = style, color
        self._since = self._snapshot()
        self._log_seen = 0  # events before the last move: the ones after are new
        self._log_key: tuple[int, int] | None = None
        self._syncing = False
        self.errors = ErrorPane()
        self._build()
        self._refresh(redraw=True)

    # ---------------------------------------------------------- constructors
    @classmethod
    def hot_remove(
        cls,
        config: str = "arm64-4k-48",
        start: int | None = None,
        size: int | None = None,
        policy: str = "v5.7",
        rodata_full: bool = False,
        *,
        op: str = "remove_memory",
        style: str = "icicle",
        color: str = "state",
        **machine_options: Any,
    ) -> Stepper:
        """Boot ``config``, hot-add ``[start, start + size)`` (default: one memory block at
        the first free block-aligned address from 0x1_0000_0000), then step its removal.

        ``op="remove_memory"`` (the default, what a lesson on the teardown wants) steps the
        whole ``remove_memory()``: the hotplug locks, the memory block devices and node links,
        memblock, and ``arch_remove_memory()`` (each section's ``vmemmap_free``, then the
        linear map's ``__remove_pgd_mapping``: unmap pass, ``free_empty_tables`` pass), in
        the order of the machine's kernel (``kernel=``; by default the configuration's
        v5.4, see :mod:`mmkit.mm.hotplug`). The range is added with ``add_memory()`` and
        left offline, as ``remove_memory`` needs.
        ``op="arch_remove_memory"`` adds with ``arch_add_memory()`` alone and steps only the
        arm64 teardown (what ``mmkit bench`` times)."""
        make, title = hot_remove_scenario(
            config, start, size, policy, rodata_full, op=op, **machine_options
        )
        return cls(make, thread="H", title=title, style=style, color=color)

    @classmethod
    def hot_add(
        cls,
        config: str = "arm64-4k-48",
        start: int | None = None,
        size: int | None = None,
        policy: str = "v5.7",
        rodata_full: bool = False,
        *,
        op: str = "add_memory",
        style: str = "icicle",
        color: str = "state",
        **machine_options: Any,
    ) -> Stepper:
        """Boot ``config`` and step the hot-add of ``[start, start + size)`` (defaults as
        :meth:`hot_remove`): ``op="add_memory"`` the whole ``add_memory()`` (resource,
        ``arch_add_memory()``: linear map then ``vmemmap_populate`` per section, memblock,
        devices, node links), ``op="arch_add_memory"`` the arm64 part alone."""
        make, title = hot_add_scenario(
            config, start, size, policy, rodata_full, op=op, **machine_options
        )
        return cls(make, thread="A", title=title, style=style, color=color)

    # ----------------------------------------------------------------- state
    @property
    def machine(self) -> Machine:
        """The machine as it is at the current step."""
        return self.session.machine

    @property
    def position(self) -> int:
        """Steps taken so far (the slider's value)."""
        return self.session.position

    @property
    def can_step(self) -> bool:
        return self.session.next_thread() is not None

    def static_figure(self) -> go.Figure:
        """The tree as a plain figure (what the widget's figure equals; the fallback
        without widgets)."""
        from mmkit.viz.tree import tree_figure

        return tree_figure(self.machine, **self._tree_options())

    # ----------------------------------------------------------------- moves
    def step(self, thread: str | None = None) -> Step:
        """Take one step (of ``thread``, else the schedule's, else the picked or first
        runnable thread); returns it, performed."""
        seen = len(self.session.events)
        self._log_seen = seen
        step = self.session.step(thread)
        redraw = step.action not in _INERT or len(self.session.events) != seen
        self._refresh(redraw=redraw)
        return step

    def step_into(self) -> None:
        """Take the next (coarse) step entry by entry (see the module docstring)."""
        self._log_seen = len(self.session.events)
        try:
            self.session.step_into()
        finally:  # a refused step into learns the step is taken whole: the button says so
            self._log_seen = len(self.session.events)
            self._refresh(redraw=True)

    def step_over(self) -> int:
        """Run until the next step's kernel function returns to its caller (or an event);
        returns the number of steps taken."""
        self._log_seen = len(self.session.events)
        n = self.session.step_over()
        self._refresh(redraw=True)
        return n

    def back(self) -> None:
        """One step back (the scenario replayed from its factory to the step before)."""
        self.session.back()
        self._log_seen = len(self.session.events)
        self._refresh(redraw=True)

    def goto(self, n: int) -> None:
        """Be at step ``n`` (0 .. the furthest step reached), as the slider does."""
        if n == self.position:
            return
        before = len(self.session.events) if n > self.position else None
        self.session.goto(n)
        self._log_seen = before if before is not None else len(self.session.events)
        self._refresh(redraw=True)

    def run_to_end(self) -> int:
        """Step until no thread can; returns the number of steps taken."""
        self._log_seen = len(self.session.events)
        n = self.session.run_to_end()
        self._refresh(redraw=True)
        return n

    def run_to_event(self) -> int:
        """Step until a step records a kernel event (that step is the last one taken) or
        no thread can run; returns the number of steps taken."""
        self._log_seen = len(self.session.events)
        n = self.session.run_to_event()
        self._refresh(redraw=True)
        return n

    def reset(self) -> None:
        """Back to the start: coarse steps, the loaded schedule, nothing taken."""
        self.session.reset()
        self._log_seen = 0
        if self.thread_picker is not None:
            self._syncing = True
            try:
                self.thread_picker.value = AUTO
            finally:
                self._syncing = False
        self._refresh(redraw=True)

    def pick(self, thread: str) -> None:
        """Run ``thread`` from now on (``"auto"``: the schedule, then the first runnable)."""
        if thread != AUTO and thread not in self.session.sched.threads:
            raise InvalidArgument(
                f"no thread {thread!r}", choices=[AUTO, *self.session.sched.threads]
            )
        self.session.preferred = thread
        if self.thread_picker is not None and self.thread_picker.value != thread:
            self._syncing = True
            try:
                self.thread_picker.value = thread
            finally:
                self._syncing = False
        self._refresh(redraw=False)

    def set_style(self, style: str) -> None:
        """Draw the tree as ``style`` (icicle, treemap, sunburst, nodelink)."""
        if style not in STYLES:
            raise InvalidArgument(f"unknown tree style {style!r}", choices=STYLES)
        self._style = style
        self._set_picker(self.style_picker, style)
        self._draw()

    def set_color(self, color: str) -> None:
        """Colour the tree by ``color`` (state or region)."""
        if color not in COLORS:
            raise InvalidArgument(f"unknown tree colouring {color!r}", choices=COLORS)
        self._color = color
        self._set_picker(self.color_picker, color)
        self._draw()

    # ------------------------------------------------------------- the view
    def _build(self) -> None:
        c = StepperControls(self.threads, self._style, self._color)
        moves: dict[str, Callable[[], Any]] = {
            "step": self.step,
            "into": self.step_into,
            "over": self.step_over,
            "back": self.back,
            "event": self.run_to_event,
            "end": self.run_to_end,
            "reset": self.reset,
        }
        for key, move in moves.items():
            c.buttons[key].on_click(self.errors.guard(lambda _b, move=move: move()))
        self.step_button, self.into_button = c.buttons["step"], c.buttons["into"]
        self.over_button, self.back_button = c.buttons["over"], c.buttons["back"]
        self.event_button, self.end_button = c.buttons["event"], c.buttons["end"]
        self.reset_button = c.buttons["reset"]
        self.thread_picker = c.thread_picker
        if self.thread_picker is not None:
            self.thread_picker.observe(self.errors.guard(self._on_thread), names="value")
        self.slider, self.play = c.slider, c.play
        self.slider.observe(self.errors.guard(self._on_slider), names="value")
        self.style_picker, self.color_picker = c.style_picker, c.color_picker
        self.style_picker.observe(self.errors.guard(self._on_style), names="value")
        self.color_picker.observe(self.errors.guard(self._on_color), names="value")
        self.status, self.source, self.log = c.status, c.source, c.log
        self.figure = self._new_figure()
        self.widget = c.layout(self.title, self.figure, self.errors.widget)

    def _new_figure(self) -> go.FigureWidget:
        from mmkit.viz.tree import tree_figure

        fig = figure_widget(tree_figure(self.machine, **self._tree_options()))
        return fig

    def _tree_options(self) -> dict[str, Any]:
        return {"style": self._style, "color": self._color, "since": self._since, "title": None}

    def _snapshot(self) -> Any:
        from mmkit.viz.tree import snapshot

        return snapshot(self.machine)

    def _draw(self) -> None:
        from mmkit.viz.tree import update_tree_figure

        update_tree_figure(self.figure, self.machine, **self._tree_options())

    @staticmethod
    def _set_picker(picker: widgets.Dropdown, value: str) -> None:
        if picker.value != value:
            picker.value = value  # its observer calls back with the same value: no-op draw

    # ------------------------------------------------------------- callbacks
    def _on_slider(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            self.goto(int(change["new"]))

    def _on_thread(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            self.pick(str(change["new"]))

    def _on_style(self, change: dict[str, Any]) -> None:
        if change["new"] != self._style:
            self.set_style(str(change["new"]))

    def _on_color(self, change: dict[str, Any]) -> None:
        if change["new"] != self._color:
            self.set_color(str(change["new"]))

    # -------------------------------------------------------------- refresh
    def _refresh(self, *, redraw: bool) -> None:
        s = self.session
        if redraw:
            self._draw()
        pos, reached = s.position, s.reached
        self._syncing = True
        try:
            if reached >= self.slider.max:
                self.slider.max = self.play.max = reached
                self.slider.value = self.play.value = pos
            else:
                self.slider.value = self.play.value = pos
                self.slider.max = self.play.max = reached
        finally:
            self._syncing = False
        nxt = s.next_step()
        can = nxt is not None
        self.step_button.disabled = not can
        self.over_button.disabled = not can
        self.event_button.disabled = not can
        self.end_button.disabled = not can
        self.into_button.disabled = not (
            nxt is not None and nxt.coarse and not s.fine and not s.kept_whole(nxt)
        )
        self.back_button.disabled = pos == 0
        self.reset_button.disabled = pos == 0 and not s.fine and s.preferred == AUTO
        self.step_button.tooltip = "take the next step" if can else s.why_not()
        self.status.value = status_html(s, nxt)
        shown = nxt if nxt is not None else (s.history[-1] if s.history else None)
        self.source.value = (
            f"<div class='mmkit-source-pane' style='{PANE};max-height:400px;line-height:1.35'>"
            + source_html(shown, self.machine.kernel, self.machine.policy)
            + "</div>"
        )
        key = (len(s.events), self._log_seen)
        if key != self._log_key:
            self._log_key = key
            self.log.value = log_html(s.events, self._log_seen)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def step_latencies(stepper: Stepper, n: int | None = None) -> list[float]:
    """Seconds taken by each :meth:`Stepper.step` (the engine's step, every pane and the
    tree's update), headless, for ``n`` steps or every step to the end."""
    out: list[float] = []
    clock = time.perf_counter
    while stepper.can_step and (n is None or len(out) < n):
        t = clock()
        stepper.step()
        out.append(clock() - t)
    return out
