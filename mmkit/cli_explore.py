"""``mmkit explore`` and ``mmkit replay``: race scenarios from the command line.

``explore`` searches a scenario's schedules; ``replay`` takes one schedule (the one explore
reported, say) step by step and prints what each step did and the kernel log as it grows.
The scenarios are discovered from :mod:`mmkit.scenarios.races` (every function it exports),
so a new scenario needs no change here. Progress lines go to stderr, at most one every
:data:`PROGRESS_SECONDS`, when stderr is a terminal or ``--progress`` asks for them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from mmkit.errors import UnknownName

if TYPE_CHECKING:
    from mmkit.scenarios.races import Race
    from mmkit.sched.explore import ExploreResult

__all__ = ["PROGRESS_SECONDS", "add_parser", "build_race", "progress_printer", "race_names"]

#: least wall time between two progress lines
PROGRESS_SECONDS = 0.5


def race_names() -> list[str]:
    """The race scenarios ``mmkit explore`` knows: every function :mod:`mmkit.scenarios.races`
    exports (discovered, so a new scenario needs no change here)."""
    from mmkit.scenarios import races

    return sorted(
        n
        for n in races.__all__
        if callable(getattr(races, n)) and not isinstance(getattr(races, n), type)
    )


def build_race(name: str, config: str | None, policy: str | None, *, fine: bool = False) -> Race:
    from mmkit.scenarios import races

    names = race_names()
    if name not in names:
        raise UnknownName(f"unknown race scenario {name!r}", choices=names)
    # only what was given: each scenario keeps its own defaults
    kw: dict[str, Any] = {k: v for k, v in (("config", config), ("policy", policy)) if v}
    if fine:
        kw["fine"] = True
    race: Race = getattr(races, name)(**kw)
    return race


def progress_printer(
    stream: IO[str], *, interval: float | None = None, clock: Callable[[], float] = time.monotonic
) -> Callable[[ExploreResult], None]:
    """A ``progress`` callback for :func:`~mmkit.sched.explore.explore` that writes the
    running counts to ``stream``, at most once every ``interval`` seconds of wall time."""
    every = PROGRESS_SECONDS if interval is None else interval
    last = clock()

    def report(r: ExploreResult) -> None:
        nonlocal last
        now = clock()
        if now - last < every:
            return
        last = now
        print(
            f"mmkit explore: {r.schedules} schedules, {r.states} states, {r.failing} failing, "
            f"{r.seconds:.1f} s",
            file=stream,
            flush=True,
        )

    return report


def replay_hint(name: str, race: Race, schedule: str) -> str:
    return (
        f"from mmkit.scenarios.races import {name}; from mmkit.sched.explore import replay; "
        f"race = {race.call()}; s = replay(race.make, {schedule!r})"
    )


def cmd_explore(args: argparse.Namespace) -> int:
    """``mmkit explore``: build the scenario, search it, print (or dump as JSON) the result."""
    from mmkit.cli import _table as table

    race = build_race(args.scenario, args.config, args.policy, fine=args.fine)
    show = args.progress or (not args.quiet and sys.stderr.isatty())
    result = race.explore(
        args.bound,
        max_schedules=args.max_schedules,
        progress=progress_printer(sys.stderr) if show else None,
    )
    if args.json:
        data = dataclasses.asdict(result) | {"scenario": race.call(), "found": result.found}
        print(json.dumps(data, indent=2))
        return 0
    rows = [[n, race.threads.get(n, "?"), str(k)] for n, k in result.thread_steps.items()]
    lines = [
        f"{race.call()}: {race.description}",
        table(rows, ["thread", "role", "steps"]),
        f"haystack: {result.haystack} interleavings of these steps",
        result.summary(),
    ]
    if not result.complete:
        lines.append(
            f"search cut short at --max-schedules {args.max_schedules}: schedules within "
            f"bound {result.bound} are left unexplored"
        )
    if result.shortest is not None:
        lines += ["", f"scenario: {race.call()}", f"schedule: {result.shortest}", "kernel events:"]
        for report in result.events:
            first, *rest = report.splitlines()
            lines += [f"  {first}", *(f"    {line}" for line in rest)]
        lines.append("replay:   " + replay_hint(args.scenario, race, result.shortest))
    print("\n".join(lines))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """``mmkit replay``: take the steps of one schedule and print each, with the events."""
    from mmkit.sched.explore import replay

    race = build_race(args.scenario, args.config, args.policy, fine=args.fine)
    s = replay(race.make, "")  # a fresh scenario; the steps follow one by one
    print(f"{race.call()}: {race.description}")
    for note in race.notes:
        print(f"note: {note}")
    schedule = args.schedule.split()
    width = len(str(len(schedule)))
    for row in s.take(schedule, run_on=args.run_on):
        print(f"{row.n:>{width}} {row.thread} cpu{row.cpu}  {row.step.describe()}")
        for event in row.events:
            first, *rest = event.report().splitlines()
            print(f"{'':>{width}}   ! {first}", *(f"{'':>{width}}     {x}" for x in rest), sep="\n")
    print(
        "then: "
        + "; ".join(
            f"{t.name} {t.state}" + (f" (waits for {t.waits_for})" if t.waits_for else "")
            for t in s.status()
        )
    )
    return 0


def add_parser(sub: Any, at_least: Callable[[int], Callable[[str], int]]) -> None:
    """Add the ``explore`` and ``replay`` subcommands to ``mmkit``'s subparsers."""
    c = sub.add_parser("replay", help="take one schedule of a race step by step")
    c.add_argument("scenario", help="a function of mmkit.scenarios.races, e.g. vmalloc_race")
    c.add_argument("schedule", help='the threads in order, e.g. "V V V H H"')
    c.add_argument("--config", default=None, help="configuration (default: the scenario's)")
    c.add_argument("--policy", default=None, help="hotplug policy (default: the scenario's)")
    c.add_argument("--fine", action="store_true", help="every page-table entry its own step")
    c.add_argument(
        "--run-on", action="store_true", help="then run the first runnable thread to the end"
    )
    c.set_defaults(func=cmd_replay)

    c = sub.add_parser("explore", help="search a race scenario's schedules for a kernel bug")
    c.add_argument("scenario", help="a function of mmkit.scenarios.races, e.g. ptdump_race")
    c.add_argument("--config", default=None, help="configuration (default: the scenario's)")
    c.add_argument("--policy", default=None, help="hotplug policy (default: the scenario's)")
    c.add_argument(
        "--bound", type=at_least(0), default=2, help="most preemptions per schedule (default: 2)"
    )
    c.add_argument(
        "--max-schedules",
        type=at_least(1),
        default=100_000,
        help="stop after this many complete schedules (default: 100000)",
    )
    c.add_argument("--fine", action="store_true", help="every page-table entry its own step")
    c.add_argument("--json", action="store_true", help="the result as one JSON object")
    shown = c.add_mutually_exclusive_group()
    shown.add_argument("--quiet", action="store_true", help="no progress lines")
    shown.add_argument(
        "--progress", action="store_true", help="progress lines on stderr even when not a TTY"
    )
    c.set_defaults(func=cmd_explore)
