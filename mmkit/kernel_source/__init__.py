"""Short pseudo-source of the kernel functions mmkit models, for a stepping view.

Each simulated step (:class:`~mmkit.events.Step`) names the kernel function it belongs to
and the line it is at. This module holds, for every such function, a short listing written
for this kit: C-like pseudo-code of the function's shape (its loop, its checks, its calls),
never the kernel's own text, with the file it lives in, the version it cites and a note on
where the model simplifies. A stepping widget shows the listing of the current step with
its line highlighted.

Where a function changed between the kernel versions or patch versions mmkit models, there
is one listing per variant: ``try_remove_memory()`` in v5.3/v5.4, v5.5 and v5.7,
``ptdump_show()`` with and without ``get_online_mems()``, ``free_empty_tables()`` of V6/V7
and of v5.7 (floor and ceiling), V3's single pass, and so on. :func:`listing` picks the
variant a machine runs from its kernel era (``machine.kernel``) and its hotplug policy
(``machine.policy``, or a policy name). A policy that runs code of its own (another
architecture's teardown) may carry ``listings``, built with :func:`source`: they come first.

The engine's step line is either one of the listing's lines verbatim or matched by a
pattern attached to the line (for lines the engine prints with addresses or counts, and
for the few it words as the model does): see :mod:`mmkit.kernel_source._listing`.

>>> from mmkit.events import Step
>>> step = Step("write", "unmap_hotplug_pte_range", "pte_clear(&init_mm, addr, ptep)")
>>> ls, i = locate(step, kernel="v5.7", policy="v5.7")
>>> ls.header
'unmap_hotplug_pte_range() \u2014 arch/arm64/mm/mmu.c, v5.7'
>>> ls.lines[i].strip()
'pte_clear(&init_mm, addr, ptep);'
>>> listing("try_remove_memory", "v5.3").kernel
'v5.4'
"""

from __future__ import annotations

import html
import textwrap
from typing import Any

from mmkit.events import Step
from mmkit.kernel_source import (
    _arch_hotplug,
    _hotplug,
    _mapping,
    _teardown,
    _teardown_v3,
    _walkers,
)
from mmkit.kernel_source._listing import Listing, source
from mmkit.policies.base import hook

__all__ = [
    "WIDTH",
    "Listing",
    "functions",
    "listing",
    "listing_html",
    "locate",
    "source",
    "variants",
]

_MODULES = (_hotplug, _arch_hotplug, _mapping, _teardown, _teardown_v3, _walkers)
_REGISTRY: dict[str, list[Listing]] = {}
for _mod in _MODULES:
    for _ls in _mod.LISTINGS:
        _REGISTRY.setdefault(_ls.function, []).append(_ls)
#: names the engine gives steps that belong to another listed function (the model's names
#: for a kernel loop; see each target's note)
_ALIASES: dict[str, str] = {k: v for _mod in _MODULES for k, v in _mod.ALIASES.items()}


def functions() -> list[str]:
    """Every function name a listing is found under (aliases included), sorted."""
    return sorted({*_REGISTRY, *_ALIASES})


def variants(function: str) -> list[Listing]:
    """Every listing of ``function`` (the default, merged form first); [] if none."""
    return list(_REGISTRY.get(_ALIASES.get(function, function), ()))


def _policy(policy: Any) -> Any:
    if policy is None or not isinstance(policy, str):
        return policy
    from mmkit import policies

    return policies.get(policy)


def listing(function: str, kernel: str | None = None, policy: Any = None) -> Listing | None:
    """The listing of ``function`` that a machine of ``kernel`` era under ``policy`` (a
    :class:`~mmkit.policies.HotplugPolicy` or its name) runs; None for an unknown function.

    Without a kernel or policy, that constraint is not applied; the first variant that
    fits is chosen (the merged v5.7 form comes first), else the first variant.
    """
    pol = _policy(policy)
    for ls in hook(pol, "listings") or ():  # a policy's own code (OPTIONAL_HOOKS)
        if ls.function == function and ls.applies(kernel, None):
            return ls  # type: ignore[no-any-return]
    options = variants(function)
    if not options:
        return None
    for ls in options:
        if ls.applies(kernel, pol):
            return ls
    return options[0]


def locate(
    step: Step, kernel: str | None = None, policy: Any = None, *, strict: bool = False
) -> tuple[Listing, int] | None:
    """The listing of ``step.function`` (see :func:`listing`) and the 0-based index of the
    line that is ``step.line``.

    If the chosen variant has no such line, another variant of the function that has it is
    returned, unless ``strict``. None when the function is not listed or no variant has
    the line.
    """
    chosen = listing(step.function, kernel, policy)
    if chosen is None:
        return None
    i = chosen.find(step.line)
    if i is not None:
        return chosen, i
    if strict:
        return None
    for other in variants(step.function):
        j = other.find(step.line)
        if j is not None:
            return other, j
    return None


#: the widest a listing line (or header) may be: 72 characters of 12 px monospace fit a
#: 560 px pane without horizontal scrolling
WIDTH = 72

#: inline styles (an ipywidgets.HTML pane strips <style> blocks in some front ends)
_PRE = (
    "font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', "
    "monospace; font-size: 12px; line-height: 1.35; margin: 0; padding: 4px 6px; "
    "white-space: pre-wrap; overflow-wrap: anywhere; background: #fafafa; border: 1px solid #ddd"
)
_HEAD = "color: #555; font-weight: bold"
_NOTE = "color: #777; font-style: italic"
_CURRENT = "background: #ffe08a; font-weight: bold"


def listing_html(listing: Listing, current: int | None = None, *, note: bool = True) -> str:
    """``listing`` as an HTML ``<pre>`` block with line ``current`` (0-based) highlighted.

    The first line is the header ``function() — file, kernel version``; with ``note``,
    the last is the note on what the model simplifies. Everything is HTML-escaped. The
    highlighted line is the one ``<span>`` with ``class="mmkit-current"``.

    >>> ls = listing("remove_memory")
    >>> out = listing_html(ls, 1)
    >>> out.count('class="mmkit-current"'), out.startswith("<pre")
    (1, True)
    """
    rows = [f'<span style="{_HEAD}">{html.escape(listing.header)}</span>']
    for i, text in enumerate(listing.lines):
        esc = html.escape(text)
        if i == current:
            rows.append(f'<span class="mmkit-current" style="{_CURRENT}">{esc}</span>')
        else:
            rows.append(esc)
    if note and listing.note:
        wrapped = "\n".join(textwrap.wrap("/* " + listing.note + " */", WIDTH))
        rows.append(f'<span style="{_NOTE}">{html.escape(wrapped)}</span>')
    body = "\n".join(rows)
    return f'<pre class="mmkit-source" style="{_PRE}">{body}</pre>'
