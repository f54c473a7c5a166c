"""Self-checked exercises: seeded questions whose answers the simulated kernel checks.

An :class:`Exercise` makes a :class:`Variant` from a seed (``variant(seed)``: the learner's
own seed gives other numbers, a class seed gives everyone the same), and checks an answer
against the engine (``check(variant, answer) -> Feedback``): the right answer is computed by
running the machine, the scenario or the explorer (``answer(variant)``), never typed in.
Feedback on a wrong answer names the misconception, not the answer; ``hint`` helps before a
second try; ``solution(variant)`` explains the answer and is shown only after an attempt
(or in *answer mode*, for instructors). ``mistakes(variant)`` lists typical wrong answers
with the feedback each must get: the tests check every checker with them on seeds 0-49.

Question banks are data: each lesson's exercises live in a module ``mmkit.exercises.lessonNN``
(discovered here, registered by id such as ``"01a"``). :class:`mmkit.widgets.CheckWidget`
puts one on screen; running all cells of a lesson never submits an answer.

Answer kinds: ``"number"`` (an int; text answers may be hex, ``0x...``), ``"choice"`` (one
of ``options``), ``"multi"`` (a set of ``options``), ``"order"`` (``options`` in an order, a
Parsons problem: the answer is a list of them or of their letters) and ``"text"``.

>>> ex = get("00a")
>>> v = ex.variant(0)
>>> ex.check(v, ex.answer(v)).correct
True
>>> ex.check(v, []).correct
False
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmkit.errors import InvalidArgument, UnknownName

__all__ = [
    "KINDS",
    "Exercise",
    "Feedback",
    "Mistake",
    "Variant",
    "by_lesson",
    "get",
    "names",
    "parse_answer",
    "register",
]

#: The answer kinds (see the module docstring).
KINDS: tuple[str, ...] = ("number", "choice", "multi", "order", "text")


@dataclass(frozen=True)
class Feedback:
    """The verdict on a learner's answer: ``correct`` and a message that helps, not tells."""

    correct: bool
    message: str

    def _repr_html_(self) -> str:
        import html

        color = "#1b7f3b" if self.correct else "#b00020"
        mark = "✔" if self.correct else "✘"
        return f'<div style="color:{color}"><b>{mark}</b> {html.escape(self.message)}</div>'


@dataclass(frozen=True)
class Variant:
    """One seeded instance of an exercise: what the learner sees, and what the checker needs.

    ``question`` is HTML-safe text (it may hold ``<code>`` and ``<b>``); ``params`` holds
    the values the question was made from (a configuration, an address...).
    """

    exercise: str  #: the exercise id ("01a")
    seed: int
    question: str
    kind: str
    options: tuple[str, ...] = ()
    hint: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Mistake:
    """A typical wrong answer and a phrase its feedback must contain (for the tests)."""

    answer: Any
    says: str


class Exercise:
    """One exercise (see the module docstring). Subclasses set ``id``, ``lesson``,
    ``title`` and ``kind`` and implement :meth:`variant`, :meth:`answer`, :meth:`check`,
    :meth:`solution` and :meth:`mistakes`."""

    id: str = ""
    lesson: str = ""
    title: str = ""
    kind: str = "text"

    def variant(self, seed: int) -> Variant:
        raise NotImplementedError

    def answer(self, variant: Variant) -> Any:
        """The right answer, computed by the engine."""
        raise NotImplementedError

    def check(self, variant: Variant, answer: Any) -> Feedback:
        raise NotImplementedError

    def solution(self, variant: Variant) -> str:
        """Why the answer is what it is (shown after an attempt)."""
        raise NotImplementedError

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        return ()

    def parse(self, variant: Variant, answer: Any) -> Any:
        """The learner's input as this exercise's answer type (typed error if it cannot be)."""
        return parse_answer(variant, answer)


def parse_answer(variant: Variant, answer: Any) -> Any:
    """Normalise ``answer`` for ``variant.kind``: numbers from text (decimal or ``0x`` hex),
    choices checked against the options, orders given as letters ("C A B") or options."""
    kind = variant.kind
    if kind == "number":
        if isinstance(answer, bool):
            raise InvalidArgument(f"{answer!r} is not a number")
        if isinstance(answer, int):
            return answer
        text = str(answer).strip().replace("_", "").replace(",", "")
        try:
            return int(text, 0)
        except ValueError:
            raise InvalidArgument(
                f"{text!r} is not a whole number: write it in decimal (4096) or hex (0x1000)"
            ) from None
    if kind == "choice":
        if answer not in variant.options:
            raise InvalidArgument(f"{answer!r} is not one of the options", choices=variant.options)
        return answer
    if kind == "multi":
        picked = set(answer) if not isinstance(answer, str) else {answer}
        unknown = picked - set(variant.options)
        if unknown:
            raise InvalidArgument(f"not options: {sorted(unknown)}", choices=variant.options)
        return frozenset(picked)
    if kind == "order":
        items = answer.split() if isinstance(answer, str) else list(answer)
        letters = {chr(ord("A") + i): o for i, o in enumerate(variant.options)}
        out = [letters.get(str(x).upper(), x) for x in items]
        unknown = [x for x in out if x not in variant.options]
        if unknown:
            raise InvalidArgument(
                f"not lines of this exercise: {unknown}; give the letters, e.g. 'C A B'"
            )
        return tuple(out)
    return str(answer).strip()


# --------------------------------------------------------------------------- registry
_REGISTRY: dict[str, Exercise] = {}
_LOADED = False


def register(exercise: Exercise) -> Exercise:
    """Add ``exercise`` to the registry (its id must be new)."""
    if exercise.kind not in KINDS:
        raise InvalidArgument(f"exercise {exercise.id}: kind {exercise.kind!r}", choices=KINDS)
    if exercise.id in _REGISTRY and type(_REGISTRY[exercise.id]) is not type(exercise):
        raise InvalidArgument(f"exercise id {exercise.id!r} is registered twice")
    _REGISTRY[exercise.id] = exercise
    return exercise


def _load() -> None:
    """Import every ``mmkit.exercises.lessonNN`` module (each registers its exercises)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("lesson"):
            importlib.import_module(f"{__name__}.{info.name}")


def names() -> list[str]:
    """Every exercise id, sorted."""
    _load()
    return sorted(_REGISTRY)


def get(exercise_id: str) -> Exercise:
    _load()
    try:
        return _REGISTRY[exercise_id]
    except KeyError:
        raise UnknownName(f"no exercise {exercise_id!r}", choices=sorted(_REGISTRY)) from None


def by_lesson(lesson: str) -> list[Exercise]:
    """The exercises of one lesson ("01"), by id."""
    _load()
    return [e for _, e in sorted(_REGISTRY.items()) if e.lesson == lesson]


def _letters(options: Iterable[str]) -> str:
    return "  ".join(f"{chr(ord('A') + i)}: {o}" for i, o in enumerate(options))
