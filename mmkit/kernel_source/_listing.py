"""The :class:`Listing` record and how a step's line is found in it.

A listing line is what a learner reads: the kernel's statement, in our own C-like
pseudo-code. The engine's step line (:attr:`mmkit.events.Step.line`) is found in it in one of
two ways:

* **verbatim**: the listing line, without its indentation, a trailing ``/* comment */``, a
  trailing ``;`` or `` {`` and an ``if (...)`` around it, is the step line itself
  (``pte_clear(&init_mm, addr, ptep)``);
* **by pattern**: where the engine renders the statement with values (addresses, counts,
  block numbers) or in the model's own words, the line carries patterns, written after
  ``  @@ `` in the source text and never shown: ``{x}`` stands for a hex number, ``{}`` for
  one value (no spaces, commas or parentheses), ``{*}`` for anything, and a pattern starting
  ``re:`` is a regular expression. A source line that starts with ``@@ `` holds more
  patterns for the line above it (to keep the source narrow).

>>> ls = source("f", "v5.7", "mm/x.c", "a note", '''
...     f(start)  @@ f({x})
...     {
...         pte_clear(&init_mm, addr, ptep);
...     }
... ''')
>>> ls.lines[0], ls.find("f(0x1000)"), ls.find("pte_clear(&init_mm, addr, ptep)")
('f(start)', 0, 2)
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from functools import cache
from typing import Any

__all__ = ["Listing", "source"]

_TOKENS = {"{x}": r"0x[0-9a-f]+", "{}": r"[^\s,()]+", "{*}": r".*"}
_TOKEN_RE = re.compile(r"\{x\}|\{\}|\{\*\}")
_COMMENT_RE = re.compile(r"\s*/\*.*\*/$")


@cache
def _compile(pattern: str) -> re.Pattern[str]:
    if pattern.startswith("re:"):
        return re.compile(pattern[3:])
    parts: list[str] = []
    last = 0
    for m in _TOKEN_RE.finditer(pattern):
        parts.append(re.escape(pattern[last : m.start()]))
        parts.append(_TOKENS[m.group()])
        last = m.end()
    parts.append(re.escape(pattern[last:]))
    return re.compile("".join(parts))


def _bodies(text: str) -> set[str]:
    """The forms of a listing line that a verbatim step line may take."""
    out = {text.strip()}
    for form in list(out):
        out.add(_COMMENT_RE.sub("", form))
    for form in list(out):
        out.add(form.rstrip(";").rstrip())
        if form.endswith("{"):
            out.add(form[:-1].rstrip())
    for form in list(out):
        if form.startswith("if (") and form.endswith(")"):
            out.add(form[4:-1])
    return out


@dataclass(frozen=True)
class Listing:
    """A short pseudo-source listing of one kernel function in one version.

    ``function`` and ``kernel`` say what it shows (``kernel`` is the version cited: a
    release such as ``"v5.7"`` or a posting such as ``"patch V7"``), ``file`` where the
    function lives, ``lines`` the pseudo-code and ``note`` where the model simplifies.
    ``kernels`` (mmkit kernel eras) and ``policy`` (required values of
    :class:`~mmkit.policies.HotplugPolicy` fields) say which simulated machines run this
    variant; empty means any.
    """

    function: str
    kernel: str
    file: str
    lines: tuple[str, ...]
    note: str
    kernels: tuple[str, ...] = ()
    policy: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    #: per line, the patterns that also match a step line there (see the module docstring)
    patterns: tuple[tuple[str, ...], ...] = field(default=(), repr=False)

    @property
    def header(self) -> str:
        """``function() — file, kernel version``."""
        return f"{self.function}() \u2014 {self.file}, {self.kernel}"

    def find(self, line: str) -> int | None:
        """The 0-based index of the listing line that ``line`` (a step's line) is, or None."""
        for i, text in enumerate(self.lines):
            if line in _bodies(text):
                return i
            pats = self.patterns[i] if i < len(self.patterns) else ()
            if any(_compile(p).fullmatch(line) for p in pats):
                return i
        return None

    def applies(self, kernel: str | None, policy: Any | None) -> bool:
        """Whether a machine of ``kernel`` era under ``policy`` runs this variant."""
        if kernel is not None and self.kernels and kernel not in self.kernels:
            return False
        if policy is not None:
            for name, accepted in self.policy:
                if getattr(policy, name, None) not in accepted:
                    return False
        return True


def source(
    function: str,
    kernel: str,
    file: str,
    note: str,
    text: str,
    *,
    kernels: tuple[str, ...] = (),
    policy: tuple[tuple[str, tuple[Any, ...]], ...] = (),
) -> Listing:
    """A :class:`Listing` from a block of pseudo-code (patterns after ``  @@ ``)."""
    lines: list[str] = []
    patterns: list[tuple[str, ...]] = []
    for raw in textwrap.dedent(text).strip("\n").splitlines():
        if raw.lstrip().startswith("@@ ") and lines:  # more patterns for the line above
            more = raw.lstrip()[3:].split("  @@ ")
            patterns[-1] += tuple(p.strip() for p in more)
            continue
        shown, *pats = raw.split("  @@ ")
        lines.append(shown.rstrip())
        patterns.append(tuple(p.strip() for p in pats))
    return Listing(function, kernel, file, tuple(lines), note, kernels, policy, tuple(patterns))
