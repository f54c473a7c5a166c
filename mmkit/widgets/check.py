"""A self-check widget for one :mod:`mmkit.exercises` exercise.

:class:`CheckWidget` shows the question of a seeded variant, an input made for its kind (a
text box for a number, radio buttons for a choice, check boxes for several, a text box of
letters for an order), and *Check*, *Hint*, *Show solution* and *New variant* buttons. The
answer is checked in the kernel by the exercise's checker, which runs the simulator; nothing
is checked until the learner presses *Check* (running all cells submits nothing), and the
solution stays hidden until one attempt was made, unless the widget is in answer mode (for
instructors: ``CheckWidget("01a", answer_mode=True)`` or ``MMKIT_ANSWER_MODE=1``).

The seed: ``seed=`` if given, else ``$MMKIT_SEED`` (a class seed, so that everyone in a room
gets the same numbers for peer instruction), else 0; *New variant* moves to the next seed.

Every button is a method too:

>>> w = CheckWidget("00a")
>>> w.check([]).correct, w.attempts
(False, 1)
>>> w.check(w.exercise.answer(w.variant)).correct
True
"""

from __future__ import annotations

import html
import os
from typing import Any

import ipywidgets as widgets

from mmkit.errors import InvalidArgument, MmkitError
from mmkit.exercises import Exercise, Feedback, get
from mmkit.widgets._base import ErrorPane

__all__ = ["ANSWER_MODE_ENV", "SEED_ENV", "CheckWidget"]

#: Environment variable with the class seed.
SEED_ENV = "MMKIT_SEED"
#: Environment variable that turns answer mode on for every check widget (instructors).
ANSWER_MODE_ENV = "MMKIT_ANSWER_MODE"


def _default_seed() -> int:
    text = os.environ.get(SEED_ENV, "").strip()
    try:
        return int(text, 0) if text else 0
    except ValueError:
        raise InvalidArgument(f"{SEED_ENV}={text!r} is not a whole number") from None


class CheckWidget:
    """One exercise on screen (see the module docstring).

    Attributes:
        exercise: the :class:`~mmkit.exercises.Exercise`; ``variant`` its current variant.
        attempts: checks made on this variant; ``last`` the last :class:`Feedback`.
        input: the answer control; ``check_button``, ``hint_button``, ``solution_button``,
            ``new_button``; ``feedback``, ``hint_html``, ``solution_html``: what they show.
    """

    def __init__(
        self,
        exercise: str | Exercise,
        *,
        seed: int | None = None,
        answer_mode: bool | None = None,
    ) -> None:
        self.exercise = get(exercise) if isinstance(exercise, str) else exercise
        if answer_mode is None:
            answer_mode = os.environ.get(ANSWER_MODE_ENV, "") not in ("", "0")
        self.answer_mode = answer_mode
        self.errors = ErrorPane()
        self.title = widgets.HTML()
        self.question = widgets.HTML()
        self.input_box = widgets.Box(layout=widgets.Layout(flex_flow="row wrap"))
        self.check_button = widgets.Button(description="Check", button_style="primary")
        self.hint_button = widgets.Button(description="Hint", icon="lightbulb-o")
        self.solution_button = widgets.Button(description="Show solution", icon="eye")
        self.new_button = widgets.Button(description="New variant", icon="refresh")
        self.feedback = widgets.HTML()
        self.hint_html = widgets.HTML()
        self.solution_html = widgets.HTML()
        self.check_button.on_click(self.errors.guard(lambda _b: self._on_check()))
        self.hint_button.on_click(self.errors.guard(lambda _b: self.hint()))
        self.solution_button.on_click(self.errors.guard(lambda _b: self.show_solution()))
        self.new_button.on_click(self.errors.guard(lambda _b: self.new_variant()))
        self.widget = widgets.VBox(
            [
                self.title,
                self.question,
                self.input_box,
                widgets.HBox(
                    [self.check_button, self.hint_button, self.solution_button, self.new_button],
                    layout=widgets.Layout(flex_flow="row wrap"),
                ),
                self.feedback,
                self.hint_html,
                self.solution_html,
                self.errors.widget,
            ],
            layout=widgets.Layout(
                border="1px solid #ccc", padding="6px 10px", margin="6px 0", width="100%"
            ),
        )
        self._load(_default_seed() if seed is None else seed)

    # ----------------------------------------------------------------- state
    def _load(self, seed: int) -> None:
        self.variant = self.exercise.variant(seed)
        self.attempts = 0
        self.last: Feedback | None = None
        v = self.variant
        self.title.value = (
            f"<b>Exercise {html.escape(self.exercise.id)}: {html.escape(self.exercise.title)}"
            f"</b> <span style='color:#777'>(variant {seed})</span>"
        )
        self.question.value = f"<div style='margin:4px 0'>{v.question}</div>"
        self.input = self._make_input()
        self.input_box.children = (self.input,)
        self.feedback.value = ""
        self.hint_html.value = ""
        self.solution_html.value = ""
        self.solution_button.disabled = not self.answer_mode
        self.solution_button.tooltip = (
            "" if self.answer_mode else "try once first: the solution opens after an attempt"
        )
        if self.answer_mode:
            self.show_solution()

    def _make_input(self) -> widgets.Widget:
        v = self.variant
        if v.kind == "choice":
            # as wide as its longest option: the default 300 px makes long options wrap
            # into the next one
            return widgets.RadioButtons(
                options=list(v.options), value=None, layout=widgets.Layout(width="auto")
            )
        if v.kind == "multi":
            boxes = [widgets.Checkbox(value=False, description=o, indent=False) for o in v.options]
            return widgets.GridBox(
                boxes,
                layout=widgets.Layout(
                    grid_template_columns="repeat(auto-fill, minmax(180px, max-content))",
                    grid_gap="0 16px",
                    width="100%",
                ),
            )
        if v.kind == "order":
            lines = "".join(
                f"<div><b>{chr(ord('A') + i)}</b>: <code>{html.escape(o)}</code></div>"
                for i, o in enumerate(v.options)
            )
            box = widgets.Text(
                placeholder="the letters in order, e.g. C A B",
                layout=widgets.Layout(width="360px"),
            )
            return widgets.VBox([widgets.HTML(lines), box])
        placeholder = "a number (decimal, or hex as 0x…)" if v.kind == "number" else "your answer"
        return widgets.Text(placeholder=placeholder, layout=widgets.Layout(width="360px"))

    def _read_input(self) -> Any:
        v = self.variant
        if v.kind == "choice":
            if self.input.value is None:
                raise InvalidArgument("pick one of the options first")
            return self.input.value
        if v.kind == "multi":
            return [b.description for b in self.input.children if b.value]
        if v.kind == "order":
            text = self.input.children[1].value
            if not text.strip():
                raise InvalidArgument("type the letters in order first, e.g. C A B")
            return text
        if not self.input.value.strip():
            raise InvalidArgument("type an answer first")
        return self.input.value

    # ----------------------------------------------------------------- actions
    def check(self, answer: Any) -> Feedback:
        """Check ``answer`` against the engine and show the feedback."""
        try:
            parsed = self.exercise.parse(self.variant, answer)
        except MmkitError as err:
            self.last = Feedback(False, str(err))
        else:
            self.last = self.exercise.check(self.variant, parsed)
        self.attempts += 1
        self.feedback.value = self.last._repr_html_()
        self.solution_button.disabled = False
        self.solution_button.tooltip = ""
        return self.last

    def _on_check(self) -> None:
        self.check(self._read_input())

    def hint(self) -> str:
        """Show the hint."""
        self.hint_html.value = (
            f"<div style='color:#555'><b>Hint:</b> {html.escape(self.variant.hint)}</div>"
        )
        return self.variant.hint

    def show_solution(self) -> str:
        """Show the solution (only after an attempt, unless in answer mode)."""
        if not self.answer_mode and self.attempts == 0:
            raise InvalidArgument("try the exercise once before opening the solution")
        text = self.exercise.solution(self.variant)
        self.solution_html.value = (
            "<div style='background:#f3f7ff;border-left:3px solid #4a7bd0;padding:4px 8px'>"
            f"<b>Solution:</b> {html.escape(text)}</div>"
        )
        return text

    def new_variant(self, seed: int | None = None) -> None:
        """Move to ``seed`` (default: the next seed) and clear the answer."""
        self._load(self.variant.seed + 1 if seed is None else seed)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
