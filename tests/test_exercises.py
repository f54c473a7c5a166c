"""Every exercise's checker against the engine, on seeds 0-49, and the check widget.

For each registered exercise and seed: the variant is deterministic and well formed, the
engine's answer is accepted, every listed typical mistake is refused with the feedback that
names its misconception, the solution mentions the answer, and seeds give more than one
variant. The widget submits nothing until Check, and opens the solution only after a try.
"""

from __future__ import annotations

import pytest

from mmkit.errors import InvalidArgument, UnknownName
from mmkit.exercises import KINDS, Variant, get, names, parse_answer
from mmkit.widgets.check import CheckWidget

SEEDS = range(50)
EXERCISES = names()


def _show(answer: object) -> list[str]:
    """How an answer may appear in a solution text."""
    if isinstance(answer, bool):
        return [str(answer)]
    if isinstance(answer, int):
        return [str(answer), hex(answer)]
    if isinstance(answer, (set, frozenset)):
        return [", ".join(sorted(answer))] if answer else ["no"]
    if isinstance(answer, tuple):
        return [str(answer[0])]
    if isinstance(getattr(answer, "name", None), str):  # a policy object
        return [answer.name]  # type: ignore[attr-defined]
    return [str(answer)]


def test_there_are_exercises() -> None:
    assert "00a" in EXERCISES


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_checker_accepts_the_engines_answer_and_explains_mistakes(exercise_id: str) -> None:
    ex = get(exercise_id)
    assert ex.kind in KINDS and ex.title and ex.lesson and exercise_id.startswith(ex.lesson)
    questions = set()
    for seed in SEEDS:
        v = ex.variant(seed)
        assert v == ex.variant(seed), "a variant must depend on its seed only"
        assert v.exercise == exercise_id and v.seed == seed and v.kind == ex.kind
        assert v.question and v.hint
        if v.kind in ("choice", "multi", "order"):
            assert len(v.options) >= 2 and len(set(v.options)) == len(v.options)
        right = ex.answer(v)
        verdict = ex.check(v, right)
        assert verdict.correct, f"{exercise_id} seed {seed}: the engine's answer is refused"
        assert verdict.message
        solution = ex.solution(v)
        assert any(s in solution for s in _show(right)), (exercise_id, seed, solution)
        for mistake in ex.mistakes(v):
            wrong = ex.check(v, ex.parse(v, mistake.answer))
            assert not wrong.correct, f"{exercise_id} seed {seed}: {mistake.answer!r} accepted"
            assert mistake.says in wrong.message, (exercise_id, seed, wrong.message)
            # feedback on a mistake names the misconception, never the whole answer
            assert solution not in wrong.message
        questions.add((v.question, v.options))
    assert len(questions) > 1, f"{exercise_id}: every seed gives the same variant"


def test_parse_answer_reads_numbers_choices_and_orders() -> None:
    num = Variant("x", 0, "q", "number")
    assert parse_answer(num, "0x1000") == 4096 == parse_answer(num, "4_096")
    with pytest.raises(InvalidArgument):
        parse_answer(num, "four")
    with pytest.raises(InvalidArgument):
        parse_answer(num, True)
    order = Variant("x", 0, "q", "order", ("a()", "b()", "c()"))
    assert parse_answer(order, "c a B") == ("c()", "a()", "b()")
    with pytest.raises(InvalidArgument):
        parse_answer(order, "D")
    choice = Variant("x", 0, "q", "choice", ("yes", "no"))
    with pytest.raises(InvalidArgument):
        parse_answer(choice, "maybe")


def test_unknown_exercise_is_a_typed_error() -> None:
    with pytest.raises(UnknownName):
        get("99z")


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_widget_submits_nothing_until_check_and_hides_the_solution(exercise_id: str) -> None:
    w = CheckWidget(exercise_id, seed=3)
    assert w.attempts == 0 and w.last is None and w.feedback.value == ""
    assert w.solution_button.disabled and w.solution_html.value == ""
    right = w.exercise.answer(w.variant)
    with pytest.raises(InvalidArgument):
        w.show_solution()
    w.solution_button.click()  # a click is refused in the error pane, not lost
    assert w.solution_html.value == "" and w.errors.errors
    if w.variant.kind != "multi":  # (no box ticked is an answer: the empty set)
        w.check_button.click()  # nothing entered: a message, no attempt counted
        assert w.attempts == 0 and "first" in w.errors.widget.value
    assert w.check(right).correct and w.attempts >= 1
    assert not w.solution_button.disabled
    w.solution_button.click()
    assert "Solution" in w.solution_html.value
    w.hint_button.click()
    assert w.variant.hint.split()[0] in w.hint_html.value
    w.new_button.click()
    assert w.variant.seed == 4 and w.attempts == 0 and w.feedback.value == ""


def test_answer_mode_shows_the_solution_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMKIT_ANSWER_MODE", "1")
    monkeypatch.setenv("MMKIT_SEED", "7")
    w = CheckWidget("00a")
    assert w.variant.seed == 7 and "Solution" in w.solution_html.value


def test_widget_inputs_reach_the_checker() -> None:
    w = CheckWidget("00a", seed=0)
    right = w.exercise.answer(w.variant)
    for box in w.input.children:
        box.value = box.description in right
    w.check_button.click()
    assert w.last is not None and w.last.correct
