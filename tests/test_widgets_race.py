"""RaceExplorer driven from Python as clicks drive it, checked against the scheduler.

The ground truth is the engine run independently of the widget: a
:class:`~mmkit.sched.Scheduler` following the same schedule (its ``status()`` and locks),
:func:`~mmkit.sched.explore.explore` and :func:`~mmkit.sched.explore.replay`.
"""

from __future__ import annotations

import html
import re

import ipywidgets as widgets
import plotly.graph_objects as go
import pytest

from mmkit import policies
from mmkit.errors import InvalidArgument, UnknownName
from mmkit.kernel_source import listing_html, locate
from mmkit.scenarios.races import Race, ptdump_race, tlb_order, vmalloc_race
from mmkit.sched import Scheduler
from mmkit.sched.explore import FAILING_KINDS, replay
from mmkit.viz.timeline import timeline_figure
from mmkit.widgets._sync import plain
from mmkit.widgets.race import (
    RaceExplorer,
    RaceSpec,
    race_spec,
    replay_call,
    short_schedule,
)


def _click_schedule(rx: RaceExplorer, schedule: str) -> None:
    for name in schedule.split():
        rx.buttons[name].click()


def _assert_buttons_match(rx: RaceExplorer, truth: Scheduler) -> None:
    """Every thread's button says what the independent scheduler's status() says."""
    for st in truth.status():
        button = rx.buttons[st.name]
        assert button.disabled == (st.state != "runnable"), st
        if st.state == "blocked":
            holders = truth.locks.holders[st.waits_for]
            assert st.waits_for in button.description
            for holder, mode in holders.items():
                assert f"{holder}: {mode}" in button.description
        elif st.state == "done":
            assert "done" in button.description
        else:
            assert button.description.startswith(f"Step {st.name}")
            assert button.tooltip == st.next


@pytest.fixture(scope="module")
def naive_shortest() -> str:
    result = ptdump_race("arm64-4k-48", "naive").explore(bound=2)
    assert result.shortest is not None
    return result.shortest


def test_blocked_thread_is_disabled_naming_lock_and_holder() -> None:
    rx = RaceExplorer("ptdump_race", config="arm64-4k-48", policy="v5.7")
    truth = ptdump_race("arm64-4k-48", "v5.7").scheduler()
    _assert_buttons_match(rx, truth)
    assert not rx.buttons["P"].disabled
    # H: lock_device_hotplug(), then mem_hotplug_begin() takes mem_hotplug_lock for write
    for _ in range(2):
        rx.buttons["H"].click()
        truth.step("H")
    assert [st.state for st in truth.status()] == ["runnable", "blocked"]
    assert rx.buttons["P"].disabled
    assert rx.buttons["P"].description == "P waits for mem_hotplug_lock (held by H: write)"
    figure = rx.figure
    assert plain(figure) == timeline_figure(truth).to_dict()  # updated in place
    assert rx.run_buttons["P"].disabled
    _assert_buttons_match(rx, truth)
    assert "mem_hotplug_lock (write)" in rx.states["H"].value
    # H runs on until P can go: the buttons follow the scheduler at every step
    while truth.blocked("P"):
        rx.buttons["H"].click()
        truth.step("H")
        _assert_buttons_match(rx, truth)
    assert not rx.buttons["P"].disabled
    assert rx.scheduler.schedule == truth.schedule
    assert rx.figure is figure and plain(figure) == timeline_figure(truth).to_dict()


def test_each_thread_shows_its_current_source_line() -> None:
    rx = RaceExplorer("ptdump_race", policy="v5.7")
    rx.follow("H H")  # P is blocked on get_online_mems()
    machine = rx.scheduler.machine
    for name, thread in rx.scheduler.threads.items():
        found = locate(thread.pending, machine.kernel, machine.policy)
        assert found is not None, thread.pending
        listing, line = found
        pane = rx.sources[name].value
        assert listing_html(listing, line) in pane
        current = re.search(r'class="mmkit-current"[^>]*>(.*?)</span>', pane)
        assert current and html.unescape(current.group(1)) == listing.lines[line]
    assert "get_online_mems" in rx.sources["P"].value


def test_one_batch_update_per_click(monkeypatch: pytest.MonkeyPatch) -> None:
    rx = RaceExplorer("tlb_order", policy="v3")
    rx.step("H")  # the lanes exist: later steps change traces in place
    calls: list[int] = []
    real = go.FigureWidget.batch_update

    def counting(self: go.FigureWidget) -> object:
        calls.append(id(self))
        return real(self)

    monkeypatch.setattr(go.FigureWidget, "batch_update", counting)
    figure = rx.figure
    rx.buttons["H"].click()
    assert calls == [id(figure)] and rx.figure is figure


def test_finished_thread_is_disabled() -> None:
    rx = RaceExplorer("tlb_order", policy="v5.7")
    rx.run_buttons["R"].click()
    truth = tlb_order("v5.7").scheduler()
    truth.follow(rx.scheduler.schedule)
    assert truth.threads["R"].done
    _assert_buttons_match(rx, truth)
    assert rx.buttons["R"].description == "R is done"


def test_failing_schedule_by_clicks_shows_the_banner(naive_shortest: str) -> None:
    rx = RaceExplorer("ptdump_race", config="arm64-4k-48", policy="naive")
    *before, last = naive_shortest.split()
    _click_schedule(rx, " ".join(before))
    assert rx.banner.value == "" and not rx.failed()
    assert "Goal:" in rx.goal.value and "freed" in rx.goal.value
    rx.buttons[last].click()
    truth = replay(ptdump_race("arm64-4k-48", "naive").factory, naive_shortest)
    reports = [e.report() for e in truth.machine.events if e.kind in FAILING_KINDS]
    assert reports and reports[0].startswith("BUG: KASAN: use-after-free in walk_")
    for report in reports:
        for line in report.splitlines():
            assert line in rx.banner.value
    assert "You win" in rx.goal.value
    assert rx.scheduler.machine.digest(log=False) == truth.machine.digest(log=False)
    # the swimlane marks the failing step and its event, and is the static figure
    marks = [a.text for a in rx.figure.layout.annotations if a.name == "event"]
    assert len(marks) == 1 and "use-after-free in walk_" in marks[0]
    assert plain(rx.figure) == timeline_figure(truth).to_dict()


def test_run_on_stops_at_the_failure(naive_shortest: str) -> None:
    rx = RaceExplorer("ptdump_race", policy="naive")
    runs = short_schedule(naive_shortest).split()  # P×21 H×30 P
    for run in runs[:-1]:
        name, _, count = run.partition("×")
        for _ in range(int(count or 1)):
            rx.step(name)
    rx.run_on(runs[-1])
    assert rx.failed()
    assert rx.scheduler.schedule_string() == naive_shortest  # stopped at the first report


def test_explore_all_fills_the_result_and_the_bar() -> None:
    rx = RaceExplorer("ptdump_race", policy="naive", bound=1)
    assert rx.result is None and rx.stepper_button.disabled
    rx.explore_button.click()
    truth = ptdump_race("arm64-4k-48", "naive").explore(bound=1)
    result = rx.result
    assert result is not None
    assert (result.schedules, result.classes, result.states, result.failing) == (
        truth.schedules,
        truth.classes,
        truth.states,
        truth.failing,
    )
    assert result.shortest == truth.shortest
    assert rx.progress.max > 0 and rx.progress.value == rx.progress.max
    text = rx.result_html.value
    assert f"{truth.classes} equivalence classes" in text and f"{truth.states} states" in text
    assert short_schedule(truth.shortest) in text
    assert "replay(ptdump_race(&#x27;arm64-4k-48&#x27;, &#x27;naive&#x27;).factory" in text
    assert not rx.stepper_button.disabled and not rx.replay_button.disabled
    # the replay call in the report really reproduces the failure
    scope: dict[str, object] = {}
    exec(replay_call(rx.race, truth.shortest).replace("print(", "str("), scope)
    assert any(e.kind == "use-after-free" for e in scope["s"].machine.events)  # type: ignore[attr-defined]
    rx.replay_button.click()
    assert rx.scheduler.schedule_string() == truth.shortest and rx.failed()


def test_load_into_stepper_gives_the_replayed_state(naive_shortest: str) -> None:
    from mmkit.widgets.stepper import Stepper

    rx = RaceExplorer("ptdump_race", policy="naive")
    rx.explore(bound=2)
    rx.stepper_button.click()
    stepper = rx.stepper
    assert isinstance(stepper, Stepper)
    assert id(stepper.widget) in [id(c) for c in rx.stepper_box.children]
    truth = replay(ptdump_race("arm64-4k-48", "naive").factory, naive_shortest)
    assert stepper.position == len(truth.schedule)
    assert stepper.session.sched.schedule == truth.schedule
    assert stepper.machine.digest(log=False) == truth.machine.digest(log=False)
    assert [e.report() for e in stepper.machine.events] == [
        e.report() for e in truth.machine.events
    ]
    stepper.back()  # one step before the failure: no report yet
    assert not any(e.kind in FAILING_KINDS for e in stepper.machine.events)
    at_start = rx.open_stepper(at_failure=False)
    assert at_start.position == 0 and rx.stepper is at_start
    assert at_start.step().thread == naive_shortest.split()[0]  # it follows the schedule


def test_explore_progress_is_reported_while_searching() -> None:
    rx = RaceExplorer("vmalloc_race", policy="naive")
    seen: list[tuple[int, int]] = []
    bar = rx.progress
    bar.observe(lambda change: seen.append((change["new"], bar.max)), names="value")
    rx.explore(bound=2)
    assert len(seen) > 3  # updated during the search, not only at the end
    assert all(v <= m for v, m in seen)
    # the bar ends full (its max shrinks to the paths explored, whatever it grew to)
    assert seen[-1][0] == bar.value == bar.max


def test_policy_switch_changes_the_verdict() -> None:
    rx = RaceExplorer("ptdump_race", policy="naive")
    assert list(rx.policy_picker.options) == policies.names()
    assert rx.explore(bound=2).found
    assert "FAILS" in rx.result_html.value
    rx.policy_picker.value = "v5.7"  # what clicking the toggle does
    assert rx.policy == "v5.7" and rx.scheduler.machine.policy.name == "v5.7"
    assert rx.result is None and rx.result_html.value == ""  # no result for v5.7 yet
    assert not rx.explore(bound=2).found
    assert "never fails" in rx.result_html.value
    assert rx.stepper_button.disabled
    rx.scheduler.run()
    rx.reset()
    rx.run_on("H")
    rx.run_on("P")
    assert "this policy closes the race" in rx.goal.value
    rx.policy_picker.value = "naive"
    assert rx.result is not None and rx.result.found  # cached per race and bound


def test_policy_switch_keeps_a_valid_schedule_and_resets_an_invalid_one() -> None:
    rx = RaceExplorer("ptdump_race", policy="naive")
    rx.step("P")
    rx.step("P")
    rx.set_policy("v3")  # P's first step under v3 is get_online_mems(): P P still possible
    assert rx.scheduler.schedule == ["P", "P"]
    assert "kept the 2 steps" in rx.notice_html.value
    truth = ptdump_race("arm64-4k-48", "v3").scheduler()
    truth.follow(["P", "P"])
    assert rx.scheduler.machine.digest(log=False) == truth.machine.digest(log=False)
    rx.set_policy("naive")
    rx.reset()
    for _ in range(2):
        rx.step("H")  # H holds mem_hotplug_lock for write
    rx.step("P")  # naive P takes no lock; under v5.7 it would be blocked here
    rx.set_policy("v5.7")
    assert rx.scheduler.schedule == []
    assert "started over" in rx.notice_html.value and "blocked" in rx.notice_html.value


def test_undo_and_reset() -> None:
    rx = RaceExplorer("vmalloc_race", policy="naive")
    assert rx.undo_button.disabled
    _click_schedule(rx, "V V H")
    assert rx.scheduler.schedule == ["V", "V", "H"]
    rx.undo_button.click()
    assert rx.scheduler.schedule == ["V", "V"]
    truth = vmalloc_race("teach-4k-39", "naive").scheduler()
    truth.follow(["V", "V"])
    assert rx.scheduler.machine.digest(log=False) == truth.machine.digest(log=False)
    rx.reset_button.click()
    assert rx.scheduler.schedule == [] and rx.undo_button.disabled


def test_title_names_config_era_and_teaching_layout() -> None:
    rx = RaceExplorer("vmalloc_race")
    assert rx.spec == RaceSpec("vmalloc_race", "teach-4k-39", "naive")
    title = rx.title.value
    assert "teach-4k-39" in title and "Linux v5.4" in title and "teaching layout" in title
    # the race's notes (which table page V and H share, what pins it) are shown
    notes = vmalloc_race("teach-4k-39", "naive").notes
    assert notes and all(note in html.unescape(rx.notes.value) for note in notes)
    real = RaceExplorer("ptdump_race", config="arm64-16k-47", policy="v6")
    assert "arm64-16k-47, Linux v5.4" in real.title.value
    assert "teaching" not in real.title.value and "policy v6" in real.title.value
    assert "one step per entry" not in real.title.value
    assert "one step per entry" in RaceExplorer("tlb_order", fine=True).title.value
    # hot-remove's thread label carries hex addresses
    assert "remove_memory(0x" in real.columns.children[0].children[0].value


def test_ready_race_and_spec_round_trip() -> None:
    for race in (tlb_order("v3"), ptdump_race("arm64-64k-42", "v6", fine=True), vmalloc_race()):
        spec = race_spec(race)
        assert spec is not None and spec.build().name == race.name
    rx = RaceExplorer(tlb_order("v3"))
    assert rx.policy == "v3" and not rx.policy_picker.disabled
    custom = Race("my race", "", {"H": "x"}, tlb_order("v3").make)
    assert race_spec(custom) is None
    rx = RaceExplorer(custom)
    assert rx.policy_picker.disabled
    with pytest.raises(InvalidArgument, match="not built by one of"):
        rx.set_policy("naive")
    with pytest.raises(InvalidArgument, match="scenario name"):
        RaceExplorer(tlb_order("v3"), policy="naive")
    with pytest.raises(UnknownName):
        RaceExplorer("no_such_race")


def test_callback_errors_land_in_the_error_pane(monkeypatch: pytest.MonkeyPatch) -> None:
    rx = RaceExplorer("ptdump_race", policy="v5.7")
    rx.step("H")
    rx.step("H")
    rx.buttons["P"].click()  # a click on the disabled button: the scheduler refuses
    assert "blocked on mem_hotplug_lock" in rx.errors.widget.value
    assert rx.scheduler.schedule == ["H", "H"]
    rx.stepper_button.click()
    assert "explore first" in rx.errors.widget.value

    def broken() -> None:
        raise RuntimeError("timeline failed")

    monkeypatch.setattr(rx, "static_figure", broken)
    rx.buttons["H"].click()
    assert "RuntimeError: timeline failed" in rx.errors.widget.value
    assert isinstance(rx.errors.errors[-1], RuntimeError)


def test_short_schedule_folds_runs() -> None:
    assert short_schedule("") == ""
    assert short_schedule("H") == "H"
    assert short_schedule("H H P H") == "H×2 P H"


def test_is_a_displayable_widget() -> None:
    rx = RaceExplorer("tlb_order", policy="v3")
    assert isinstance(rx.widget, widgets.VBox)
    shown = [id(c) for c in rx.widget.children]
    for part in (rx.errors.widget, rx.banner, rx.figure, rx.columns, rx.result_html):
        assert id(part) in shown
    assert isinstance(rx.progress, widgets.IntProgress)
    assert callable(rx._ipython_display_)
