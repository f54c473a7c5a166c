"""The race explorer: be the CPU scheduler of a race and make the kernel fail.

In the spirit of *The Deadlock Empire*, :class:`RaceExplorer` hands the learner the
scheduler of one of the lesson races (:mod:`mmkit.scenarios.races`) and a goal: *make
ptdump read a table page that hot-remove has freed*. Each thread has a column: a button that
lets it take its next step (disabled while it is blocked on a lock, saying which lock and who
holds it, or when it is done), a button that runs it on until it blocks, finishes or
something fails, what it will do next, and its current pseudo-source line. Above them the
lock-policy switch rebuilds the same scenario under another patch version (keeping the
steps taken so far when they are still possible there); undo and reset are
:meth:`~mmkit.sched.Scheduler.undo` and a fresh start. A red banner shows the KASAN-style
report of the kernel events the interleaving raised, only once something failed; the
swimlane (:func:`mmkit.viz.timeline.timeline_figure`) is updated in place.

"Explore all" searches every schedule with at most *bound* preemptions
(:func:`mmkit.sched.explore.explore`, with a progress bar) and reports the equivalence
classes, states and failing schedules it found, the shortest failing schedule as a short
string and as the Python call that replays it; that schedule can be replayed here or loaded
into a :class:`~mmkit.widgets.stepper.Stepper`.

Every click is also a method, so a test or a learner can drive it from Python:

>>> rx = RaceExplorer("ptdump_race", config="arm64-4k-48", policy="v5.7")
>>> rx.follow("H H"); rx.buttons["P"].disabled
True
>>> rx.buttons["P"].description
'P waits for mem_hotplug_lock (held by H: write)'
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from mmkit import policies
from mmkit.errors import InvalidArgument, UnknownName
from mmkit.events import KernelEvent, Step
from mmkit.scenarios.races import Race
from mmkit.sched import Scheduler
from mmkit.sched.explore import FAILING_KINDS, ExploreResult
from mmkit.viz._common import machine_label
from mmkit.viz.timeline import timeline_figure
from mmkit.widgets._base import ErrorPane, figure_widget
from mmkit.widgets._race_panes import banner_html, button_text, goal_html, result_html, state_html
from mmkit.widgets._race_spec import (
    DEFAULT_CONFIGS,
    DEFAULT_GOAL,
    GOALS,
    SCENARIOS,
    RaceSpec,
    race_spec,
    replay_call,
    resolve_race,
    short_schedule,
)
from mmkit.widgets._source import source_html
from mmkit.widgets._sync import sync_figure

__all__ = [
    "DEFAULT_CONFIGS",
    "GOALS",
    "SCENARIOS",
    "RaceExplorer",
    "RaceSpec",
    "race_spec",
    "replay_call",
    "short_schedule",
]


class RaceExplorer:
    """Step the threads of a race by hand, switch the lock policy, explore all schedules.

    ``race`` is a scenario name of :data:`SCENARIOS` (built on ``config``, default
    :data:`DEFAULT_CONFIGS`, under ``policy``, default ``"naive"``) or a ready
    :class:`~mmkit.scenarios.races.Race` (its policy can be switched when one of the
    scenario functions built it).

    Attributes:
        race: the race shown now; ``spec`` how it was built (None: not switchable).
        scheduler: its :class:`~mmkit.sched.Scheduler` (the state every control shows).
        buttons: thread name -> its step button; ``run_buttons`` -> its run-on button.
        states: thread name -> ``HTML`` with its next step, lock wait and locks held.
        sources: thread name -> ``HTML`` with its current pseudo-source line.
        policy_picker: ``ToggleButtons`` of the policies.
        banner: ``HTML``: the kernel log of the failure, empty while nothing failed.
        goal: ``HTML``: the goal and whether it is reached; ``notes``: the race's notes
            (which table page the threads share and what pins it).
        figure: the swimlane, a ``go.FigureWidget`` updated in place.
        bound_picker, explore_button, progress (``IntProgress``), result_html: explore all.
        result: the last :class:`~mmkit.sched.explore.ExploreResult` of this race and bound.
        stepper: the :class:`~mmkit.widgets.stepper.Stepper` last opened, if any.
        errors: the :class:`~mmkit.widgets._base.ErrorPane`; ``widget`` the container.
    """

    def __init__(
        self,
        race: str | Race = "ptdump_race",
        *,
        config: str | None = None,
        policy: str | None = None,
        fine: bool = False,
        bound: int = 2,
    ) -> None:
        self.spec, built = resolve_race(race, config=config, policy=policy, fine=fine)
        if bound not in range(4):
            raise InvalidArgument(f"RaceExplorer: bound={bound!r}; it must be 0, 1, 2 or 3")
        self.errors = ErrorPane()
        self.result: ExploreResult | None = None
        self.stepper: Any = None
        self.notice = ""
        self._results: dict[tuple[str, int], ExploreResult] = {}
        self._syncing = False

        self.title = widgets.HTML()
        names = policies.names()
        self.policy_picker = widgets.ToggleButtons(
            options=names,
            value=self.spec.policy if self.spec else None,
            description="Lock policy",
            disabled=self.spec is None,
            tooltips=[f"rebuild this race under policy {n}" for n in names],
            style={"description_width": "initial", "button_width": "64px"},
        )
        self.undo_button = widgets.Button(description="Undo", icon="undo")
        self.reset_button = widgets.Button(description="Reset", icon="refresh")
        self.notice_html = widgets.HTML()
        self.goal = widgets.HTML()
        self.notes = widgets.HTML()
        self.schedule_html = widgets.HTML()
        self.banner = widgets.HTML()
        self.columns = widgets.HBox(layout=widgets.Layout(width="100%"))
        self.buttons: dict[str, widgets.Button] = {}
        self.run_buttons: dict[str, widgets.Button] = {}
        self.states: dict[str, widgets.HTML] = {}
        self.sources: dict[str, widgets.HTML] = {}

        self.bound_picker = widgets.Dropdown(
            options=[0, 1, 2, 3],
            value=bound,
            description="Preemptions ≤",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="150px"),
        )
        self.explore_button = widgets.Button(
            description="Explore all", icon="search", button_style="info"
        )
        self.progress = widgets.IntProgress(
            value=0, min=0, max=1, description="", layout=widgets.Layout(width="240px")
        )
        self.result_html = widgets.HTML()
        self.replay_button = widgets.Button(
            description="Replay it here", icon="play", disabled=True
        )
        self.stepper_button = widgets.Button(
            description="Open in Stepper", icon="step-forward", disabled=True
        )
        self.stepper_box = widgets.VBox()

        self._use(built)
        self.figure = figure_widget(self.static_figure())

        guard = self.errors.guard
        self.undo_button.on_click(guard(lambda _b: self.undo()))
        self.reset_button.on_click(guard(lambda _b: self.reset()))
        self.explore_button.on_click(guard(lambda _b: self.explore()))
        self.replay_button.on_click(guard(lambda _b: self.replay_shortest()))
        self.stepper_button.on_click(guard(lambda _b: self.open_stepper()))
        self.policy_picker.observe(guard(self._on_policy), names="value")
        self.bound_picker.observe(guard(lambda _c: self._show_result()), names="value")

        wrap = widgets.Layout(flex_flow="row wrap", align_items="center", width="100%")
        self.widget = widgets.VBox(
            [
                self.title,
                widgets.HBox(
                    [self.policy_picker, self.undo_button, self.reset_button], layout=wrap
                ),
                self.notice_html,
                self.errors.widget,
                self.goal,
                self.notes,
                self.schedule_html,
                self.columns,
                self.banner,
                self.figure,
                widgets.HBox(
                    [self.bound_picker, self.explore_button, self.progress],
                    layout=wrap,
                ),
                self.result_html,
                widgets.HBox([self.replay_button, self.stepper_button], layout=wrap),
                self.stepper_box,
            ],
            layout=widgets.Layout(width="100%", max_width="1200px"),
        )
        self._refresh(figure=False)

    # ------------------------------------------------------------------ state
    @property
    def policy(self) -> str:
        """The policy of the race shown now."""
        return str(self.scheduler.machine.policy.name)

    @property
    def scenario(self) -> str:
        return self.spec.scenario if self.spec else self.race.name.partition("(")[0]

    def new_events(self) -> list[KernelEvent]:
        """The kernel events the steps taken so far recorded (not the prepared machine's)."""
        return list(self.scheduler.machine.events[self._base_events :])

    def failed(self) -> bool:
        """Whether the interleaving so far made the kernel report a bug."""
        return any(e.kind in FAILING_KINDS for e in self.new_events())

    def static_figure(self) -> go.Figure:
        """The swimlane of the interleaving so far (the figure without widgets)."""
        return timeline_figure(self.scheduler)

    # ---------------------------------------------------------------- driving
    def step(self, name: str) -> Step:
        """Let thread ``name`` take its next step (what its step button does)."""
        step = self.scheduler.step(name)
        self.notice = ""
        self._refresh()
        return step

    def run_on(self, name: str) -> None:
        """Let thread ``name`` run until it blocks, finishes or the kernel reports a bug
        (its run-on button)."""
        s = self.scheduler
        if name not in s.threads:
            raise InvalidArgument(f"no thread {name!r}", choices=list(s.threads))
        seen = len(s.machine.events)
        s.step(name)  # refuses, with the reason, a blocked or finished thread
        while not s.threads[name].done and not s.blocked(name) and not s.deadlock:
            if any(e.kind in FAILING_KINDS for e in s.machine.events[seen:]):
                break
            s.step(name)
        self.notice = ""
        self._refresh()

    def follow(self, schedule: str) -> None:
        """Start over and take the steps ``schedule`` names (``"H H P ..."``)."""
        self.scheduler.replay(schedule.split())
        self.notice = ""
        self._refresh()

    def undo(self) -> None:
        """Take back the last step."""
        if not self.scheduler.schedule:
            raise InvalidArgument("nothing to undo: no step has been taken")
        self.scheduler.undo()
        self.notice = ""
        self._refresh()

    def reset(self) -> None:
        """Start the race over."""
        self.scheduler.replay([])
        self.notice = ""
        self._refresh()

    def set_policy(self, policy: str) -> None:
        """Rebuild the same race under ``policy`` (the policy switch), keeping the steps
        taken so far when they are possible there, else starting over and saying so."""
        if self.spec is None:
            raise InvalidArgument(
                f"{self.race.name} was not built by one of {sorted(SCENARIOS)}: "
                "build it under another policy yourself and open a new RaceExplorer"
            )
        if policy not in policies.names():
            raise UnknownName(f"unknown hotplug policy {policy!r}", choices=policies.names())
        taken = list(self.scheduler.schedule)
        self.spec = RaceSpec(self.spec.scenario, self.spec.config, policy, self.spec.fine)
        self._use(self.spec.build())
        try:
            self.scheduler.follow(taken)
        except InvalidArgument as err:
            self.scheduler.replay([])
            self.notice = (
                f"Under {policy} the {len(taken)} steps taken so far are not possible "
                f"({err}): started over."
            )
        else:
            self.notice = (
                f"Rebuilt under {policy}; kept the {len(taken)} steps taken so far."
                if taken
                else f"Rebuilt under {policy}."
            )
        self._sync_picker()
        self._refresh()

    def explore(self, bound: int | None = None) -> ExploreResult:
        """Search every schedule with at most ``bound`` preemptions (default: the picker's),
        showing progress; the result is kept per race and bound."""
        if bound is None:
            bound = int(self.bound_picker.value)
        elif bound != self.bound_picker.value:
            self._syncing = True
            try:
                self.bound_picker.value = bound
            finally:
                self._syncing = False
        bar = self.progress
        bar.bar_style, bar.value, bar.max = "info", 0, 100

        def progress(result: ExploreResult) -> None:
            paths = result.schedules + result.cache_hits
            while paths > bar.max:  # the number of paths is not known ahead: grow the bar
                bar.max *= 2
            bar.value = paths
            self.result_html.value = (
                f"<span style='color:#555'>exploring: {result.schedules} schedules, "
                f"{result.states} states, {result.failing} failing…</span>"
            )

        result = self.race.explore(bound=bound, progress=progress)
        paths = result.schedules + result.cache_hits
        bar.max = max(paths, 1)
        bar.value = bar.max
        bar.bar_style = "danger" if result.found else "success"
        self._results[(self.race.name, bound)] = result
        self._show_result()
        self.goal.value = self._goal_html()
        return result

    def replay_shortest(self) -> None:
        """Replay here the shortest failing schedule the last exploration found."""
        self.follow(self._shortest())

    def open_stepper(self, *, at_failure: bool = True) -> Any:
        """Load the shortest failing schedule into a :class:`~mmkit.widgets.stepper.Stepper`
        (shown under the explorer) and return it: at the failing step (the state
        :func:`~mmkit.sched.explore.replay` of that schedule gives; step back from there)
        or, with ``at_failure=False``, at its start."""
        schedule = self._shortest()
        from mmkit.widgets.stepper import Stepper

        stepper = Stepper(self.race, schedule=schedule)
        n = len(schedule.split())
        while at_failure and stepper.position < n:
            before = stepper.position
            stepper.run_to_event()  # stops at each kernel event: the last is the failure
            if stepper.position == before:
                break
        if stepper.position > n:
            stepper.goto(n)
        self.stepper = stepper
        self.stepper_box.children = (
            widgets.HTML(
                f"<b>Stepper</b> loaded with {html.escape(short_schedule(schedule))}"
                + (", at the failing step: go back to watch it happen" if at_failure else "")
            ),
            stepper.widget,
        )
        return stepper

    # --------------------------------------------------------------- updating
    def _shortest(self) -> str:
        result = self.result
        if result is None or result.shortest is None:
            raise InvalidArgument(
                "no failing schedule to load: explore first"
                if result is None
                else f"explore found no failing schedule under {self.policy} at bound "
                f"{result.bound}"
            )
        return result.shortest

    def _use(self, race: Race) -> None:
        self.race = race
        self.scheduler: Scheduler = race.scheduler()
        machine, _threads = race.make()  # the prepared machine: its events are not ours
        self._base_events = len(machine.events)
        if list(self.buttons) != list(self.scheduler.threads):
            self._build_columns()
        self._show_result()

    def _build_columns(self) -> None:
        guard = self.errors.guard
        self.buttons, self.run_buttons, self.states, self.sources = {}, {}, {}, {}
        columns = []
        for name, thread in self.scheduler.threads.items():
            button = widgets.Button(layout=widgets.Layout(width="auto", max_width="100%"))
            button.on_click(guard(lambda _b, n=name: self.step(n)))
            run = widgets.Button(
                description=f"Run {name} on",
                icon="fast-forward",
                tooltip=f"let {name} run until it blocks, finishes or the kernel reports a bug",
                layout=widgets.Layout(width="auto"),
            )
            run.on_click(guard(lambda _b, n=name: self.run_on(n)))
            self.buttons[name], self.run_buttons[name] = button, run
            # the panes scroll inside their column rather than push the next one off
            pane = widgets.Layout(width="100%", overflow="auto")
            self.states[name] = widgets.HTML(layout=pane)
            self.sources[name] = widgets.HTML(layout=pane)
            header = widgets.HTML(
                f"<b>{html.escape(name)}</b> · CPU {thread.cpu} · {html.escape(thread.label)}"
            )
            columns.append(
                widgets.VBox(
                    [header, widgets.HBox([button, run]), self.states[name], self.sources[name]],
                    layout=widgets.Layout(
                        flex="1 1 0", min_width="0", padding="4px", border="1px solid #ddd"
                    ),
                )
            )
        self.columns.children = tuple(columns)

    def _on_policy(self, change: dict[str, Any]) -> None:
        if not self._syncing and change["new"] != self.policy:
            self.set_policy(change["new"])

    def _sync_picker(self) -> None:
        self._syncing = True
        try:
            self.policy_picker.value = self.policy
        finally:
            self._syncing = False

    def _refresh(self, *, figure: bool = True) -> None:
        s = self.scheduler
        machine = s.machine
        for st in s.status():
            button = self.buttons[st.name]
            button.disabled = st.state != "runnable"
            self.run_buttons[st.name].disabled = button.disabled
            button.description = button_text(st, s.locks, self.race.threads)
            button.tooltip = st.next or "finished"
            button.button_style = "warning" if st.state == "blocked" else ""
            self.states[st.name].value = state_html(st)
            self.sources[st.name].value = source_html(
                s.threads[st.name].pending, getattr(machine, "kernel", None), machine.policy
            )
        self.title.value = (
            f"<h3 style='margin:4px 0'>{html.escape(self.scenario)}: "
            f"{html.escape(machine_label(machine))}; lock policy {html.escape(self.policy)}"
            + ("; one step per entry" if getattr(machine, "fine", False) else "")
            + "</h3>"
        )
        self.undo_button.disabled = not s.schedule
        self.notice_html.value = (
            f"<div style='color:#8a5300'>{html.escape(self.notice)}</div>" if self.notice else ""
        )
        self.schedule_html.value = (
            f"<div style='font-family:monospace'>schedule so far ({len(s.schedule)} steps): "
            f"{html.escape(short_schedule(s.schedule_string()) or '—')}</div>"
        )
        self.goal.value = self._goal_html()
        self.notes.value = "".join(
            f"<div style='font-size:12px;color:#444'>{html.escape(note)}</div>"
            for note in self.race.notes
        )
        self.banner.value = banner_html(self.new_events())
        if figure:
            sync_figure(self.figure, self.static_figure())

    def _goal_html(self) -> str:
        result = self._results.get((self.race.name, int(self.bound_picker.value)))
        return goal_html(
            self.scheduler,
            GOALS.get(self.scenario, DEFAULT_GOAL),
            self.new_events(),
            self.policy,
            result,
        )

    def _show_result(self) -> None:
        if self._syncing:
            return
        self.result = self._results.get((self.race.name, int(self.bound_picker.value)))
        found = self.result is not None and self.result.found
        self.replay_button.disabled = self.stepper_button.disabled = not found
        self.result_html.value = (
            "" if self.result is None else result_html(self.result, self.race, self.policy)
        )

    # ---------------------------------------------------------------- display
    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
