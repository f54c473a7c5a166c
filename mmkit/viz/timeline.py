"""A swimlane of an interleaving: who ran which step, who held which lock, where it broke.

Reads a :class:`mmkit.sched.Scheduler` (a race being stepped, or a schedule replayed with
:func:`mmkit.sched.explore.replay`): one lane per thread, labelled with its letter, CPU and
what it does; step *n* of the interleaving (``scheduler.history[n - 1]``, numbered from 1 as
``mmkit replay`` prints them) is a marker at x = *n* in the lane of the thread that took it,
coloured and shaped by its action; hover shows ``Step.describe()``.

Under the markers, each lock a thread held is a bar from the step that took it to the step
that released it (a bar still open runs to "now"); a shared hold (``read_lock``:
``get_online_mems()``) is hatched and paler, an exclusive one (``lock``, ``write_lock``:
``mem_hotplug_begin()``) solid. Beyond "now" each unfinished thread shows its next step:
an open circle when it may run, an hourglass when it is blocked, with the lock it waits
for and who holds it.

A kernel event (KASAN report, ``BUG``, ``WARN``, lost mapping, deadlock) is marked with a
red cross on the step whose performing recorded it, and annotated with its kind and
function. ``KernelEvent.step`` indexes the *machine's* history, which only
:meth:`Machine.run <mmkit.machine.Machine.run>` fills: the scheduler keeps its own
``history`` and the race machines do not record, so there ``KernelEvent.step`` is ``None``.
:func:`event_steps` therefore uses ``KernelEvent.step`` only when the machine's history *is*
the scheduler's; otherwise it replays the schedule on a fresh copy of the scenario (the
scheduler is deterministic) and notes after which step each event appeared.

>>> from mmkit.scenarios.races import ptdump_race
>>> from mmkit.sched.explore import replay
>>> race = ptdump_race("arm64-64k-42", "naive")
>>> s = replay(race.make, race.explore(bound=1).shortest)
>>> [(e.kind, s.schedule[k]) for e, k in event_steps(s)]
[('use-after-free', 'P')]
>>> fig = timeline_figure(s)
>>> [a.text.split("<br>")[0] for a in fig.layout.annotations if a.name == "event"]
['<b>use-after-free in walk_pte</b>']
"""

from __future__ import annotations

import itertools
import textwrap
from typing import Any

import plotly.graph_objects as go

from mmkit import _validate
from mmkit.events import ACTIONS
from mmkit.viz._common import OKABE_ITO, RED, machine_label
from mmkit.viz.timeline_records import LockHold, event_steps, lock_holds

__all__ = ["ACTION_STYLE", "LockHold", "event_steps", "lock_holds", "timeline_figure"]

#: How each action is drawn: (colour, marker symbol). Colour and shape both differ between
#: the common actions, so the lanes read without colour vision too.
ACTION_STYLE: dict[str, tuple[str, str]] = {
    "call": (OKABE_ITO["grey"], "circle"),
    "read": (OKABE_ITO["blue"], "circle"),
    "write": (OKABE_ITO["vermillion"], "diamond"),
    "alloc": (OKABE_ITO["green"], "triangle-up"),
    "free": (OKABE_ITO["purple"], "triangle-down"),
    "tlbi": (OKABE_ITO["orange"], "star"),
    "lock": (OKABE_ITO["black"], "triangle-right"),
    "unlock": (OKABE_ITO["black"], "triangle-left-open"),
    "warn": (RED, "x-thin-open"),
    "bug": (RED, "x-thin-open"),
    "access": (OKABE_ITO["sky"], "square"),
    "memblock": (OKABE_ITO["yellow"], "square"),
    "device": (OKABE_ITO["green"], "pentagon"),
    "sysfs": (OKABE_ITO["sky"], "hexagon"),
}

#: Colour of each lock's bars (Okabe-Ito; any other lock is grey).
LOCK_COLORS: dict[str, str] = {
    "device_hotplug_lock": OKABE_ITO["orange"],
    "mem_hotplug_lock": OKABE_ITO["blue"],
    "init_mm.page_table_lock": OKABE_ITO["green"],
}

_BAR_OFFSET = 0.24  #: first lock bar below the markers (y grows downwards)
_BAR_STEP = 0.1
_BAR_WIDTH = 0.08


# ------------------------------------------------------------------ the figure
def _wrap(text: str, width: int = 90) -> str:
    return "<br>".join(textwrap.wrap(text, width, break_on_hyphens=False)) or text


def _runs(schedule: list[str]) -> str:
    """``"P×21 H×30 P"``: a schedule compressed into runs."""
    parts = []
    for name, group in itertools.groupby(schedule):
        count = len(list(group))
        parts.append(name if count == 1 else f"{name}×{count}")
    return " ".join(parts)


def _dtick(n: int) -> int:
    """A step-number tick spacing giving at most about 15 ticks: 1, 2, 5, 10, 20, 50..."""
    for scale in itertools.count():
        for d in (1, 2, 5):
            if d * 10**scale * 15 >= n:
                return d * 10**scale
    raise AssertionError  # pragma: no cover


def _lock_color(lock: str) -> str:
    return LOCK_COLORS.get(lock, OKABE_ITO["grey"])


def timeline_figure(scheduler: Any, *, title: str | None = None) -> go.Figure:
    """The swimlane of ``scheduler``'s interleaving so far (see the module docstring).

    Traces, in a fixed order: one per action of :data:`mmkit.events.ACTIONS` (the step
    markers; ``customdata`` is the step number), one per (lock, shared/exclusive) pair that
    occurs (``"mem_hotplug_lock (read)"``: bars, ``base`` the step that took it, ``base +
    x`` the step that released it or "now"), then ``"next step"``, ``"blocked"`` and
    ``"kernel event"`` markers. Annotations: the lane labels (``name="lane"``), each
    event (``"event"``) and the "now" line's label (``"now"``).
    """
    _validate.shaped(scheduler, "scheduler", "a Scheduler", "threads", "history", "machine")
    threads = list(scheduler.threads.values())
    lane = {t.name: i for i, t in enumerate(threads)}
    history = list(scheduler.history)
    schedule = list(scheduler.schedule)
    n = len(history)
    now = n + 0.5

    traces: list[go.BaseTraceType] = []
    first_action = next((a for a in ACTIONS if any(s.action == a for s in history)), None)
    for action in ACTIONS:
        ks = [k for k, s in enumerate(history) if s.action == action]
        color, symbol = ACTION_STYLE.get(action, (OKABE_ITO["grey"], "circle"))
        traces.append(
            go.Scatter(
                name=action,
                legendgroup="actions",
                legendgrouptitle={"text": "steps"} if action == first_action else None,
                x=[k + 1 for k in ks],
                y=[lane[schedule[k]] for k in ks],
                mode="markers",
                marker={
                    "color": color,
                    "symbol": symbol,
                    "size": 10,
                    "line": {"color": "#333333", "width": 0.5},
                },
                customdata=[k + 1 for k in ks],
                text=[
                    f"<b>step {k + 1}</b> · thread {schedule[k]}<br>{_wrap(history[k].describe())}"
                    for k in ks
                ],
                hovertemplate="%{text}<extra></extra>",
                showlegend=bool(ks),
            )
        )

    holds = lock_holds(scheduler)
    kinds = sorted({(h.lock, h.shared) for h in holds})
    for lock, shared in kinds:
        mine = [h for h in holds if h.lock == lock and h.shared == shared]
        ends = [h.end if h.end is not None else now for h in mine]
        traces.append(
            go.Bar(
                name=f"{lock} ({'read: shared' if shared else 'exclusive'})",
                legendgroup="locks",
                legendgrouptitle={"text": "locks held"} if (lock, shared) == kinds[0] else None,
                orientation="h",
                base=[h.start for h in mine],
                x=[e - h.start for h, e in zip(mine, ends, strict=True)],
                y=[lane[h.thread] + _BAR_OFFSET + _BAR_STEP * h.slot for h in mine],
                width=[_BAR_WIDTH] * len(mine),
                marker={
                    "color": _lock_color(lock),
                    "opacity": 0.55 if shared else 0.9,
                    "pattern": {"shape": "/" if shared else "", "fgcolor": "#FFFFFF", "size": 6},
                    "line": {"color": _lock_color(lock), "width": 1},
                },
                customdata=[[h.start, h.end] for h in mine],
                text=[
                    f"<b>{h.lock}</b> held by {h.thread} ({h.mode})<br>taken at step {h.start}, "
                    + (f"released at step {h.end}" if h.end is not None else "still held now")
                    for h in mine
                ],
                textposition="none",
                hovertemplate="%{text}<extra></extra>",
            )
        )

    # next steps: runnable (open circle) and blocked (hourglass), one column past "now"
    nxt: dict[str, list[Any]] = {"x": [], "y": [], "text": []}
    blk: dict[str, list[Any]] = {"x": [], "y": [], "text": [], "label": []}
    holders = getattr(getattr(scheduler, "locks", None), "holders", {})
    status = {s.name: s for s in scheduler.status()}
    for t in threads:
        st = status[t.name]
        if st.state == "done":
            continue
        if st.state == "blocked":
            who = ", ".join(sorted(holders.get(st.waits_for, {}))) or "?"
            blk["x"].append(n + 1)
            blk["y"].append(lane[t.name])
            blk["label"].append(f"blocked on {st.waits_for}")
            blk["text"].append(
                f"<b>{t.name} is blocked</b>: waits for {st.waits_for} (held by {who})"
                f"<br>next: {_wrap(st.next or '')}"
            )
        else:
            nxt["x"].append(n + 1)
            nxt["y"].append(lane[t.name])
            nxt["text"].append(f"<b>{t.name} may run</b><br>next: {_wrap(st.next or '')}")
    traces.append(
        go.Scatter(
            name="next step",
            x=nxt["x"],
            y=nxt["y"],
            mode="markers",
            marker={"symbol": "circle-open", "size": 12, "color": "#333333", "line": {"width": 2}},
            text=nxt["text"],
            hovertemplate="%{text}<extra></extra>",
            showlegend=bool(nxt["x"]),
        )
    )
    traces.append(
        go.Scatter(
            name="blocked",
            x=blk["x"],
            y=blk["y"],
            mode="markers+text",
            marker={"symbol": "hourglass", "size": 14, "color": OKABE_ITO["vermillion"]},
            text=blk["label"],
            textposition="top left",
            textfont={"color": OKABE_ITO["vermillion"], "size": 11},
            cliponaxis=False,
            customdata=blk["text"],
            hovertemplate="%{customdata}<extra></extra>",
            showlegend=bool(blk["x"]),
        )
    )

    mapped = event_steps(scheduler)
    ev_x = [0 if k is None else k + 1 for _, k in mapped]
    ev_y = [lane[schedule[k]] if k is not None else lane.get(e.thread, 0) for e, k in mapped]
    traces.append(
        go.Scatter(
            name="kernel event",
            x=ev_x,
            y=ev_y,
            mode="markers",
            marker={
                "symbol": "x",
                "size": 18,
                "color": RED,
                "line": {"color": "#FFFFFF", "width": 1},
            },
            customdata=[0 if k is None else k + 1 for _, k in mapped],
            text=[
                f"<b>{e.kind} in {e.function}</b> (step {x})<br>"
                + "<br>".join(_wrap(line) for line in e.report().splitlines())
                for (e, _), x in zip(mapped, ev_x, strict=True)
            ],
            hovertemplate="%{text}<extra></extra>",
            showlegend=bool(mapped),
        )
    )

    annotations: list[dict[str, Any]] = []
    for t in threads:
        annotations.append(
            {
                "name": "lane",
                "xref": "paper",
                "yref": "y",
                "x": 0,
                "y": lane[t.name] - 0.42,
                "xanchor": "left",
                "yanchor": "bottom",
                "showarrow": False,
                "align": "left",
                "text": f"<b>{t.name}</b> (CPU {t.cpu}): {t.label}"
                + ("  <i>done</i>" if t.done else ""),
                "font": {"size": 12},
            }
        )
    shown = mapped[:4]
    for i, ((e, _), x, y) in enumerate(zip(shown, ev_x, ev_y, strict=False)):
        annotations.append(
            {
                "name": "event",
                "xref": "x",
                "yref": "y",
                "x": x,
                "y": y,
                "xanchor": "right" if x > n / 2 else "left",
                "ax": -40 if x > n / 2 else 40,
                "ay": 46 + 34 * i,
                "showarrow": True,
                "arrowcolor": RED,
                "text": f"<b>{e.kind} in {e.function}</b><br>at step {x}",
                "font": {"color": RED, "size": 12},
                "align": "left",
                "bgcolor": "rgba(255,255,255,0.9)",
                "bordercolor": RED,
            }
        )
    finished = scheduler.finished()
    annotations.append(
        {
            "name": "now",
            "xref": "x",
            "yref": "paper",
            "x": now,
            "y": 1,
            "yanchor": "bottom",
            "showarrow": False,
            "text": "end" if finished else "now",
            "font": {"size": 11, "color": "#555555"},
        }
    )
    shapes = [
        {
            "type": "line",
            "name": "now",
            "xref": "x",
            "yref": "paper",
            "x0": now,
            "x1": now,
            "y0": 0,
            "y1": 1,
            "line": {"color": "#555555", "width": 1, "dash": "dot"},
        }
    ]

    m = scheduler.machine
    policy = getattr(getattr(m, "policy", None), "name", "")
    state = (
        "deadlock"
        if getattr(scheduler, "deadlock", False)
        else "finished"
        if finished
        else f"stepping, {n} step{'s' * (n != 1)} taken"
    )
    failing = [e for e, _ in mapped]
    verdict = (
        f"<span style='color:{RED}'><b>{failing[0].kind} in {failing[0].function}</b></span>"
        + (f" (+{len(failing) - 1} more events)" if len(failing) > 1 else "")
        if failing
        else "no kernel event"
    )
    sched = _runs(schedule) or "(no step yet)"
    if len(sched) > 90:
        sched = sched[:87] + "…"
    where = machine_label(m) + (f", policy {policy}" if policy else "")
    head = f"{title}: {where}" if title else f"Interleaving on {where}"
    sub = f"schedule {sched} · {state} · {verdict}"
    lanes = max(len(threads), 1)
    fig = go.Figure(data=traces)
    fig.update_layout(
        template="plotly_white",
        title={"text": f"{head}<br><sup>{sub}</sup>", "x": 0.01, "xanchor": "left"},
        barmode="overlay",
        height=int(230 + 170 * lanes),
        margin={"l": 60, "r": 20, "t": 100, "b": 60},
        hovermode="closest",
        legend={"orientation": "v", "x": 1.01, "y": 1, "groupclick": "toggleitem"},
        shapes=shapes,
        annotations=annotations,
        xaxis={
            "title": {"text": "step of the interleaving"},
            "range": [0.3, n + 1.8],
            "tickmode": "linear",
            "tick0": 0,
            "dtick": _dtick(n),
            "rangemode": "tozero",
            "showgrid": True,
            "zeroline": False,
        },
        yaxis={
            "range": [lanes - 0.35, -0.6],
            "tickmode": "array",
            "tickvals": list(range(len(threads))),
            "ticktext": [f"<b>{t.name}</b>" for t in threads],
            "tickfont": {"size": 16},
            "showgrid": False,
            "zeroline": False,
            "fixedrange": True,
        },
    )
    return fig
