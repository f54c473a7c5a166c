"""Steps and kernel events as tables: what an operation did, one row per step or report.

:func:`steps_frame` reads the records a stepping view reads (a machine's ``history``, a
``Scheduler``'s ``history`` or the rows of ``Scheduler.take()``) and :func:`events_frame` the
kernel log (``machine.events``). Addresses, pfns and descriptors are ``"0x..."`` strings;
``raw=True`` gives the ints instead, for computing.

>>> from mmkit.machine import Machine
>>> m = Machine("arm64-4k-48", record=True)
>>> m.hot_add(0x4000_0000_0000, m.desc.memory_block_size)
>>> frame = steps_frame(m.history)
>>> row = frame[frame["action"] == "alloc"].iloc[0]
>>> row["function"], row["pfn"] == hex(m.history[row["n"] - 1].pfn)
('alloc_init_pud', True)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd

from mmkit import _validate
from mmkit.events import KernelEvent, Step
from mmkit.tables._columns import typed_frame

if TYPE_CHECKING:
    from mmkit.sched.scheduler import TraceRow

__all__ = ["EVENT_COLUMNS", "STEP_COLUMNS", "events_frame", "steps_frame"]

#: Columns of :func:`steps_frame`, in order. ``table pfn`` and ``index`` say which entry (or,
#: with ``count > 1``, which run of entries) was touched; ``old``/``new`` are descriptors.
STEP_COLUMNS: tuple[str, ...] = (
    "n",
    "thread",
    "function",
    "action",
    "level",
    "va",
    "table pfn",
    "index",
    "count",
    "old",
    "new",
    "pfn",
    "note",
    "describe",
)

#: Columns of :func:`events_frame`, in order; ``step`` is the index in the machine's history.
EVENT_COLUMNS: tuple[str, ...] = (
    "step",
    "thread",
    "kind",
    "function",
    "va",
    "pfn",
    "freed by",
    "message",
)

_STEP_HEX = frozenset({"va", "table pfn", "old", "new", "pfn"})
_EVENT_HEX = frozenset({"va", "pfn"})


def _step_row(n: int, step: Step) -> dict[str, object]:
    return {
        "n": n,
        "thread": step.thread,
        "function": step.function,
        "action": step.action,
        "level": step.level,
        "va": step.va,
        "table pfn": step.table,
        "index": step.index,
        "count": step.count,
        "old": step.old,
        "new": step.new,
        "pfn": step.pfn,
        "note": step.note,
        "describe": step.describe(),
    }


def steps_frame(steps: Iterable[Step | TraceRow], *, raw: bool = False) -> pd.DataFrame:
    """One row per step, in order (see :data:`STEP_COLUMNS`).

    ``steps`` holds :class:`~mmkit.events.Step` records (``n`` counts them from 1) or the
    :class:`~mmkit.sched.scheduler.TraceRow` rows of ``Scheduler.take()`` (``n`` is the row's
    own, and an ``events`` column holds the kernel log lines the step recorded). ``raw=True``
    keeps addresses as ints.
    """
    _validate.records(steps, "steps", "steps (machine.history) or scheduler.take() rows")
    rows: list[dict[str, object]] = []
    traced = False
    for n, item in enumerate(steps, start=1):
        if isinstance(item, Step):
            rows.append(_step_row(n, item))
        else:
            traced = True
            row = _step_row(item.n, item.step)
            row["thread"] = item.thread or item.step.thread
            row["events"] = "\n".join(e.report() for e in item.events)
            rows.append(row)
    columns = STEP_COLUMNS + (("events",) if traced else ())
    return typed_frame(rows, columns, hex_columns=_STEP_HEX, raw=raw)


def events_frame(machine_or_events: Any, *, raw: bool = False) -> pd.DataFrame:
    """One row per kernel report (see :data:`EVENT_COLUMNS`), from a machine (its
    ``events``) or from a sequence of :class:`~mmkit.events.KernelEvent` records."""
    _validate.records(
        getattr(machine_or_events, "events", machine_or_events),
        "machine_or_events",
        "a Machine or its events",
        "kind",
        "message",
    )
    events: Iterable[KernelEvent] = getattr(machine_or_events, "events", machine_or_events)
    rows = [
        {
            "step": e.step,
            "thread": e.thread,
            "kind": e.kind,
            "function": e.function,
            "va": e.va,
            "pfn": e.pfn,
            "freed by": e.freed_by,
            "message": e.message,
        }
        for e in events
    ]
    return typed_frame(rows, EVENT_COLUMNS, hex_columns=_EVENT_HEX, raw=raw)
