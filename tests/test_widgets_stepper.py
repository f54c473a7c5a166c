"""The Stepper widget, driven from Python: clicks, methods, and the engine as ground truth.

Every expectation is checked against a scheduler driven directly (built here, not by the
widget), against the explorer's failing schedule, or against the static tree figure.
"""

from __future__ import annotations

import copy

import pytest

from mmkit.errors import InvalidArgument
from mmkit.machine import Machine
from mmkit.mm.hotplug import add_memory, remove_memory
from mmkit.scenarios.races import ptdump_race
from mmkit.sched import Scheduler, Thread
from mmkit.viz.tree import STATE_COLORS, snapshot, tree_figure
from mmkit.viz.tree_model import tree_nodes
from mmkit.widgets._sync import plain
from mmkit.widgets.stepper import Stepper, step_latencies

START = 0x1_0000_0000
SMALL = "arm64-64k-42"  # rodata_full: one 1 GiB block, 40 steps, 3 table pages freed


def block(config: str) -> int:
    return Machine(config, record=False).desc.memory_block_size


def direct_remove(config: str, *, rodata_full: bool = False) -> Scheduler:
    """remove_memory() of one block at START on its own scheduler (built without the widget)."""
    size = block(config)
    base = Machine(config, rodata_full=rodata_full, online_type="offline", record=False)
    base.add_memory(0, START, size)

    def make() -> tuple[Machine, list[Thread]]:
        m = copy.deepcopy(base)
        return m, [Thread("H", "remove", 0, remove_memory(m, START, size))]

    return Scheduler(make)


def small_stepper(**kw: object) -> Stepper:
    return Stepper.hot_remove(SMALL, START, block(SMALL), rodata_full=True, **kw)


@pytest.fixture(scope="module")
def naive_failure() -> str:
    result = ptdump_race("arm64-4k-48", "naive").explore(bound=2)
    assert result.found
    return result.shortest


# ------------------------------------------------------------------ ground truth
@pytest.mark.parametrize("k", [0, 1, 9, 21, 22, 35, 40])
def test_k_steps_equal_a_machine_driven_directly(k: int) -> None:
    s = small_stepper()
    for _ in range(k):
        s.step()
    direct = direct_remove(SMALL, rodata_full=True)
    direct.follow(["H"] * k)
    assert s.position == k
    assert s.machine.digest(log=False) == direct.machine.digest(log=False)
    assert s.machine.table_pages() == direct.machine.table_pages()
    assert [x.describe() for x in s.session.history] == [x.describe() for x in direct.history]


def test_race_steps_follow_the_schedule_then_any_runnable_thread(naive_failure: str) -> None:
    race = ptdump_race("arm64-4k-48", "naive")
    s = Stepper(race, schedule=naive_failure)
    plan = naive_failure.split()
    for _ in range(5):
        s.step()
    assert s.session.sched.schedule == plan[:5]
    s.goto(0)
    s.run_to_end()
    # the schedule first, then the first runnable thread until nothing can run
    direct = race.scheduler()
    direct.follow(plan)
    direct.run()
    assert s.session.sched.schedule == direct.schedule
    assert s.machine.digest(log=False) == direct.machine.digest(log=False)


def test_a_schedule_string_and_list_are_the_same_and_bad_names_refused() -> None:
    race = ptdump_race("arm64-4k-48", "naive")
    a = Stepper(race, schedule="H H P")
    b = Stepper(race, schedule=["H", "H", "P"])
    for s in (a, b):
        s.step(), s.step(), s.step()
    assert a.session.sched.schedule == b.session.sched.schedule == ["H", "H", "P"]
    with pytest.raises(InvalidArgument):
        Stepper(race, schedule="H X")


def test_picking_a_thread_leaves_the_schedule() -> None:
    race = ptdump_race("arm64-4k-48", "naive")
    s = Stepper(race, schedule="H H H")
    s.step()
    s.pick("P")
    assert s.thread_picker is not None and s.thread_picker.value == "P"
    s.step()
    assert s.session.sched.schedule == ["H", "P"]
    assert s.session.plan == ["H", "P"] and s.slider.max == 2
    with pytest.raises(InvalidArgument):
        s.pick("Z")


# ------------------------------------------------------------------------ moves
def test_back_then_step_returns_to_the_same_digest() -> None:
    s = small_stepper()
    direct = direct_remove(SMALL, rodata_full=True)
    for k in range(1, 30):
        s.step()
        after = s.machine.digest(log=False)
        s.back()
        direct.replay(["H"] * (k - 1))
        assert s.position == k - 1
        assert s.machine.digest(log=False) == direct.machine.digest(log=False)
        s.step()
        assert s.machine.digest(log=False) == after


def test_run_to_event_stops_at_the_step_that_recorded_it(naive_failure: str) -> None:
    race = ptdump_race("arm64-4k-48", "naive")
    s = Stepper(race, schedule=naive_failure)
    n = s.run_to_event()
    assert n == s.position > 0 and s.session.events
    event = s.session.events[0]
    assert event.kind == "use-after-free"
    # ground truth: one step fewer of the same schedule records nothing
    plan = s.session.sched.schedule
    before = race.scheduler()
    before.follow(plan[:-1])
    assert before.machine.events == []
    assert event.step == s.position - 1  # the event names the last step taken
    assert "use-after-free" in s.log.value and "#fff3b0" in s.log.value  # shown, as new


def test_run_to_end_and_buttons_disabled_at_the_ends() -> None:
    s = small_stepper()
    assert s.back_button.disabled and s.reset_button.disabled
    assert not s.step_button.disabled and not s.end_button.disabled
    s.end_button.click()
    direct = direct_remove(SMALL, rodata_full=True)
    direct.run()
    assert s.position == len(direct.history) and s.machine.digest(
        log=False
    ) == direct.machine.digest(log=False)
    for b in (s.step_button, s.over_button, s.event_button, s.end_button, s.into_button):
        assert b.disabled
    assert not s.back_button.disabled and not s.reset_button.disabled
    assert "every thread has finished" in s.status.value
    with pytest.raises(InvalidArgument):
        s.step()
    s.reset_button.click()
    assert s.position == 0 and s.back_button.disabled and s.slider.max == 0


def test_slider_follows_the_history_and_moves_the_machine() -> None:
    s = small_stepper()
    for _ in range(6):
        s.step()
    assert (s.slider.value, s.slider.max, s.play.max) == (6, 6, 6)
    s.back()
    assert (s.slider.value, s.slider.max) == (5, 6)
    s.slider.value = 2  # as dragging it does
    direct = direct_remove(SMALL, rodata_full=True)
    direct.follow(["H", "H"])
    assert s.position == 2 and s.machine.digest(log=False) == direct.machine.digest(log=False)
    s.slider.value = 6  # forward again, along the steps reached
    direct.follow(["H"] * 4)
    assert s.position == 6 and s.machine.digest(log=False) == direct.machine.digest(log=False)
    with pytest.raises(InvalidArgument):
        s.goto(7)


def test_clicks_and_methods_give_the_same_state(naive_failure: str) -> None:
    race = ptdump_race("arm64-4k-48", "naive")
    clicked, called = Stepper(race, schedule=naive_failure), Stepper(race, schedule=naive_failure)
    clicks = [clicked.step_button] * 3 + [clicked.back_button, clicked.over_button]
    clicks += [clicked.event_button, clicked.back_button, clicked.end_button]
    for b in clicks:
        b.click()
    called.step(), called.step(), called.step(), called.back(), called.step_over()
    called.run_to_event(), called.back(), called.run_to_end()
    assert clicked.errors.errors == []
    assert clicked.session.sched.schedule == called.session.sched.schedule
    assert clicked.machine.digest(log=False) == called.machine.digest(log=False)
    assert clicked.status.value == called.status.value
    assert clicked.log.value == called.log.value
    assert plain(clicked.figure) == plain(called.figure)


def test_step_over_runs_a_kernel_function_to_its_return() -> None:
    s = small_stepper()
    # vmemmap_free() calls unmap_hotplug_range(), then free_empty_tables()
    while s.session.next_step().function != "unmap_hotplug_range":
        s.step()
    k = s.position
    n = s.step_over()
    assert s.session.next_step().function == "free_empty_tables"
    taken = s.session.history[k:]
    assert len(taken) == n and {x.function for x in taken} <= {
        "unmap_hotplug_range",
        "unmap_hotplug_pgd_range",
        "unmap_hotplug_pud_range",
        "unmap_hotplug_pmd_range",
        "unmap_hotplug_pte_range",
        "free_hotplug_page_range",
    }
    direct = direct_remove(SMALL, rodata_full=True)
    direct.follow(["H"] * (k + n))
    assert s.machine.digest(log=False) == direct.machine.digest(log=False)


def test_step_over_in_try_remove_memory_returns_to_remove_memory() -> None:
    s = small_stepper()
    while s.session.next_step().line.split("(")[0] != "firmware_map_remove":
        s.step()
    assert s.session.next_step().function == "try_remove_memory"
    s.over_button.click()
    nxt = s.session.next_step()
    # try_remove_memory() has returned: remove_memory() drops device_hotplug_lock
    assert (nxt.function, nxt.action, nxt.note) == (
        "remove_memory",
        "unlock",
        "device_hotplug_lock",
    )


def test_step_over_stops_at_a_kernel_event(naive_failure: str) -> None:
    race = ptdump_race("arm64-4k-48", "naive")
    s = Stepper(race, schedule=naive_failure)
    target = len(naive_failure.split())
    s.goto(0)
    while s.position < target - 3:
        s.step()
    while not s.session.events and s.can_step:
        s.step_over()
    assert s.session.events and s.session.events[0].step == s.position - 1


def test_step_into_takes_the_entries_of_the_coarse_step() -> None:
    s = Stepper.hot_remove("arm64-4k-48", START, block("arm64-4k-48"))
    direct = direct_remove("arm64-4k-48")
    while not (s.session.next_step().coarse and s.session.next_step().action == "write"):
        s.step()
    k = s.position
    assert not s.into_button.disabled
    direct.follow(["H"] * k)
    digest_before = direct.machine.digest(log=False)
    coarse = direct.step("H")  # the coarse step, performed by the engine in one go
    entries = list(coarse.expand())
    assert len(entries) == coarse.count > 1
    s.into_button.click()
    assert s.errors.errors == [] and s.session.fine and s.into_button.disabled
    assert s.machine.digest(log=False) == digest_before  # nothing of the coarse step done yet
    fine = []
    while len(fine) < len(entries):
        step = s.step()
        assert step.count == 1 or step.action not in ("write", "free")
        if step.action == "write" and step.table == coarse.table:
            fine.append(step)
    assert [(e.va, e.index, e.old, e.new, e.function) for e in entries] == [
        (f.va, f.index, f.old, f.new, f.function) for f in fine
    ]
    # back works in the fine run too, and the end is the coarse run's end
    s.back()
    s.run_to_end()
    direct.run()
    assert s.machine.digest(log=False) == direct.machine.digest(log=False)
    s.reset()
    assert not s.session.fine and s.position == 0


def test_step_into_a_race_keeps_the_failing_interleaving(naive_failure: str) -> None:
    race = ptdump_race("arm64-4k-48", "naive")
    s = Stepper(race, schedule=naive_failure)
    while not (s.session.next_step().coarse and s.session.next_step().action == "write"):
        s.step()
    s.step_into()
    assert s.session.fine and s.session.events == []
    s.run_to_event()
    assert [e.kind for e in s.session.events] == ["use-after-free"]


def test_step_into_a_step_the_engine_takes_whole_is_refused_and_changes_nothing() -> None:
    # ptdump notes a run of none entries (or of leaves) in one step even with one step
    # per entry: the first such step of P
    steps = list(ptdump_race("arm64-4k-48", "naive").make()[1][1].ops)
    k = next(i for i, x in enumerate(steps) if x.coarse and x.function.startswith("walk_"))
    s = Stepper(ptdump_race("arm64-4k-48", "naive"), schedule=" ".join(["P"] * (k + 1)))
    for _ in range(k):
        s.step()
    nxt = s.session.next_step()
    assert nxt.coarse and nxt.function.startswith("walk_") and not s.into_button.disabled
    digest = s.machine.digest(log=False)
    s.into_button.click()
    assert "taken whole" not in s.errors.widget.value  # the message says why instead
    assert "takes this step whole" in s.errors.widget.value
    assert not s.session.fine and s.position == k and s.machine.digest(log=False) == digest
    assert s.into_button.disabled and "taken whole" in s.status.value
    s.step()
    assert s.session.sched.schedule == ["P"] * (k + 1)


def test_step_into_refuses_a_step_of_one_entry() -> None:
    s = small_stepper()
    assert not s.session.next_step().coarse and s.into_button.disabled
    with pytest.raises(InvalidArgument):
        s.step_into()


# ----------------------------------------------------------------------- figure
def test_the_tree_shows_a_freed_table_and_equals_the_static_figure() -> None:
    s = small_stepper()
    direct = direct_remove(SMALL, rodata_full=True)
    since = snapshot(direct.machine)  # the machine as the scenario starts
    direct.run()
    k = next(i for i, x in enumerate(direct.history) if x.action == "free" and x.note == "table")
    s.run_to_end()
    s.goto(k)
    before = plain(s.figure)["data"]
    step = s.step()
    assert step.action == "free" and step.note == "table"
    after = plain(s.figure)["data"]
    assert after != before
    static = tree_figure(s.machine, style="icicle", color="state", since=since)
    assert after == plain(static)["data"]
    freed = [n.id for n in tree_nodes(s.machine, since=since) if n.state == "freed"]
    assert freed
    trace = s.figure.data[0]
    colors = dict(zip(trace.ids, trace.marker.colors, strict=True))
    assert all(colors[i] == STATE_COLORS["freed"] for i in freed)
    old = dict(zip(before[0]["ids"], before[0]["marker"]["colors"], strict=True))
    assert any(old.get(i) != STATE_COLORS["freed"] for i in freed)


def test_style_and_colour_pickers_redraw_the_tree() -> None:
    s = small_stepper()
    for _ in range(25):
        s.step()
    s.style_picker.value = "treemap"
    assert s.figure.data[0].type == "treemap"
    s.color_picker.value = "region"
    since = snapshot(direct_remove(SMALL, rodata_full=True).machine)
    static = tree_figure(s.machine, style="treemap", color="region", since=since)
    assert plain(s.figure)["data"] == plain(static)["data"]
    s.set_style("icicle")
    assert s.figure.data[0].type == "icicle" and s.style_picker.value == "icicle"
    with pytest.raises(InvalidArgument):
        s.set_color("rainbow")


# ------------------------------------------------------------------------ panes
def test_source_pane_highlights_the_next_line_and_status_is_hex() -> None:
    s = small_stepper()
    while s.session.next_step().function != "unmap_hotplug_range":
        s.step()
    assert "mmkit-current" in s.source.value and "unmap_hotplug_range" in s.source.value
    nxt = s.session.next_step()
    assert f"{nxt.va:#x}" in s.status.value
    assert str(nxt.va) not in s.status.value  # no decimal address


def test_an_exception_in_a_callback_is_shown_and_the_widget_keeps_working(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mmkit.widgets.stepper as stepper_module

    s = small_stepper()

    def boom(*_a: object, **_k: object) -> str:
        raise RuntimeError("source pane broke")

    monkeypatch.setattr(stepper_module, "source_html", boom)
    s.step_button.click()
    assert isinstance(s.errors.errors[-1], RuntimeError)
    assert "source pane broke" in s.errors.widget.value
    monkeypatch.undo()
    s.step_button.click()
    assert s.errors.widget.value == "" and s.position == 2
    s.back_button.click()
    assert s.position == 1
    # a refused move (back at the start) is shown too, with its message
    s.back_button.click()
    s.back_button.click()
    assert s.position == 0 and "already at the start" in s.errors.widget.value


# ----------------------------------------------------------------- constructors
def test_hot_add_steps_add_memory_to_the_same_machine() -> None:
    size = block(SMALL)
    s = Stepper.hot_add(SMALL, START, size)
    s.run_to_end()
    m = Machine(SMALL, online_type="offline", record=False)
    m.run(add_memory(m, 0, START, size))
    assert s.machine.digest(log=False) == m.digest(log=False)


def test_arch_remove_memory_op_and_a_plain_factory() -> None:
    size = block(SMALL)
    s = Stepper.hot_remove(SMALL, START, size, op="arch_remove_memory")
    s.run_to_end()
    m = Machine(SMALL, online_type="offline", record=False)
    tables = m.table_pages()
    m.hot_add(START, size)
    m.hot_remove(START, size)
    assert s.machine.digest(log=False) == m.digest(log=False)
    assert s.machine.table_pages() == tables  # v5.7 frees every table it added

    def op() -> tuple[Machine, object]:
        machine = Machine(SMALL, record=False)
        return machine, machine.arch_add_memory(START, size)

    t = Stepper(op)
    assert list(t.threads) == ["K"] and "arch_add_memory" in t.threads["K"]
    t.run_to_end()
    assert t.machine.hotplugged == [(START, size)]
    with pytest.raises(InvalidArgument):
        Stepper.hot_remove(SMALL, op="unplug")


def test_step_latencies_times_every_step_to_the_end() -> None:
    s = small_stepper()
    times = step_latencies(s, 5)
    assert len(times) == 5 and s.position == 5 and all(t > 0 for t in times)
    rest = step_latencies(s)
    assert s.position == 5 + len(rest) and not s.can_step


@pytest.mark.parametrize("policy", ["naive", "v3", "v6", "v7", "v5.7"])
@pytest.mark.parametrize("rodata_full", [False, True])
def test_step_into_every_policy_ends_where_the_coarse_run_ends(
    policy: str, rodata_full: bool
) -> None:
    size = block(SMALL)
    base = Machine(SMALL, policy=policy, rodata_full=rodata_full, online_type="offline")
    base.add_memory(0, START, size)

    def make() -> tuple[Machine, list[Thread]]:
        m = copy.deepcopy(base)
        return m, [Thread("H", "remove", 0, remove_memory(m, START, size))]

    direct = Scheduler(make)
    direct.run()
    splittable = 0
    session = Stepper.hot_remove(
        SMALL, START, size, policy=policy, rodata_full=rodata_full
    ).session  # the widget's moves without its panes: this checks the engine side
    for k, step in enumerate(direct.history):
        if not step.coarse or splittable == 2:  # two are enough; each is a whole fine run
            continue
        session.reset()
        for _ in range(k):
            session.step()
        try:
            session.step_into()
        except InvalidArgument as err:
            assert "takes this step whole" in str(err)
            continue
        splittable += 1
        session.run_to_end()
        assert session.machine.digest(log=False) == direct.machine.digest(log=False)
        assert session.events == direct.machine.events == []
    assert splittable > 0
