"""Which race a :class:`~mmkit.widgets.race.RaceExplorer` shows, and schedules as text.

A race is rebuilt under another policy by calling its scenario function again
(:data:`SCENARIOS`) with the same configuration: :class:`RaceSpec` records that call and
:func:`race_spec` reads it back from a ready race's replayable name. A schedule reads better
folded (:func:`short_schedule`) and travels best as the Python that replays it
(:func:`replay_call`, a counterexample printed as code, as hypothesis prints one).
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mmkit.errors import InvalidArgument, UnknownName
from mmkit.scenarios.races import Race, ptdump_race, tlb_order, vmalloc_race

__all__ = [
    "DEFAULT_CONFIGS",
    "DEFAULT_GOAL",
    "GOALS",
    "SCENARIOS",
    "RaceSpec",
    "race_spec",
    "replay_call",
    "resolve_race",
    "short_schedule",
]

#: The race scenarios the explorer can build by name.
SCENARIOS: dict[str, Callable[..., Race]] = {
    "ptdump_race": ptdump_race,
    "tlb_order": tlb_order,
    "vmalloc_race": vmalloc_race,
}

#: The configuration each scenario is built on when none is given (the lessons' choice:
#: vmalloc's race needs a teaching layout, where nothing else pins the shared table).
DEFAULT_CONFIGS: dict[str, str] = {
    "ptdump_race": "arm64-4k-48",
    "tlb_order": "arm64-4k-48",
    "vmalloc_race": "teach-4k-39",
}

#: What the learner is asked to make happen in each race.
GOALS: dict[str, str] = {
    "ptdump_race": "make ptdump read a table page that hot-remove has freed",
    "tlb_order": "make the reader on CPU 1 reach a freed page through its stale TLB entry",
    "vmalloc_race": "make vmalloc() write into a table page that hot-remove has freed",
}

#: The goal of a race none of :data:`GOALS` names.
DEFAULT_GOAL = "make the kernel report a bug"


@dataclass(frozen=True)
class RaceSpec:
    """How a race was built: scenario function, configuration, policy and granularity."""

    scenario: str  #: a key of :data:`SCENARIOS`
    config: str
    policy: str
    fine: bool = False

    def build(self, policy: str | None = None) -> Race:
        """The race, under ``policy`` if given (else this spec's)."""
        fn = SCENARIOS[self.scenario]
        return fn(config=self.config, policy=policy or self.policy, fine=self.fine)


def race_spec(race: Race) -> RaceSpec | None:
    """The :class:`RaceSpec` of a race built by a :data:`SCENARIOS` function, read from its
    replayable name (``Race.call()``, e.g. ``"tlb_order('v3', 'arm64-4k-48')"``); None for
    any other race.

    >>> race_spec(tlb_order("v3"))
    RaceSpec(scenario='tlb_order', config='arm64-4k-48', policy='v3', fine=False)
    """
    try:
        call = ast.parse(race.call(), mode="eval").body
    except SyntaxError:
        return None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
        return None
    fn = SCENARIOS.get(call.func.id)
    if fn is None:
        return None
    try:
        args = [ast.literal_eval(a) for a in call.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return None
    bound.apply_defaults()
    a = bound.arguments
    return RaceSpec(call.func.id, str(a["config"]), str(a["policy"]), bool(a["fine"]))


def resolve_race(
    race: str | Race,
    *,
    config: str | None = None,
    policy: str | None = None,
    fine: bool = False,
) -> tuple[RaceSpec | None, Race]:
    """The race a :class:`~mmkit.widgets.race.RaceExplorer` is asked for, and its spec: a
    scenario name is built on ``config`` (default :data:`DEFAULT_CONFIGS`) under ``policy``
    (default ``"naive"``, where the race can be lost); a ready race is taken as it is.

    >>> resolve_race("tlb_order")[0]
    RaceSpec(scenario='tlb_order', config='arm64-4k-48', policy='naive', fine=False)
    """
    if isinstance(race, str):
        if race not in SCENARIOS:
            raise UnknownName(f"unknown race scenario {race!r}", choices=list(SCENARIOS))
        spec = RaceSpec(race, config or DEFAULT_CONFIGS[race], policy or "naive", fine)
        return spec, spec.build()
    if config is not None or policy is not None or fine:
        raise InvalidArgument(
            "RaceExplorer(race): config, policy and fine go with a scenario name "
            f"(RaceExplorer('ptdump_race', config=...)), not with the ready race {race.name}"
        )
    return race_spec(race), race


def short_schedule(schedule: str) -> str:
    """A schedule with runs folded, for reading: ``"P P P H H P"`` -> ``"P×3 H×2 P"``.

    >>> short_schedule("P P P H H P")
    'P×3 H×2 P'
    """
    runs: list[list[Any]] = []
    for name in schedule.split():
        if runs and runs[-1][0] == name:
            runs[-1][1] += 1
        else:
            runs.append([name, 1])
    return " ".join(n if k == 1 else f"{n}×{k}" for n, k in runs)


def replay_call(race: Race, schedule: str) -> str:
    """The Python that replays ``schedule`` on ``race`` (a counterexample you can paste).

    >>> print(replay_call(tlb_order("v3"), "H R"))
    from mmkit.scenarios.races import tlb_order
    from mmkit.sched.explore import replay
    s = replay(tlb_order('v3', 'arm64-4k-48').factory, "H R")
    print("\\n".join(e.report() for e in s.machine.events))
    """
    call = race.call()
    head = call.partition("(")[0]
    return (
        f"from mmkit.scenarios.races import {head}\n"
        "from mmkit.sched.explore import replay\n"
        f's = replay({call}.factory, "{schedule}")\n'
        'print("\\n".join(e.report() for e in s.machine.events))'
    )
