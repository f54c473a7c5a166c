"""A thread's current pseudo-source line, as a stepping view shows it.

:func:`source_html` gives the short pseudo-source of the step's kernel function
(:func:`mmkit.kernel_source.locate`) with the step's line highlighted, or, for a function
without a listing, the function and the step's own line.

>>> from mmkit.events import Step
>>> "remove_memory" in source_html(Step("lock", "remove_memory", "lock(device_hotplug_lock)"))
True
"""

from __future__ import annotations

import html
from typing import Any

from mmkit.events import Step

__all__ = ["source_html"]


def source_html(step: Step | None, kernel: str | None = None, policy: Any = None) -> str:
    """HTML for an ``ipywidgets.HTML`` pane: ``step``'s pseudo-source, current line marked
    (the variant ``kernel`` and ``policy`` run, as :func:`mmkit.kernel_source.listing`
    picks it)."""
    if step is None:
        return "<pre style='margin:0;color:#666'>(returned)</pre>"
    from mmkit.kernel_source import listing_html, locate

    found = locate(step, kernel, policy)
    if found is not None:
        body = listing_html(*found)
    else:
        body = (
            f"<pre style='margin:0'><b>{html.escape(step.function)}()</b>\n"
            f"  <span style='background:#fff3b0'>{html.escape(step.line)}</span></pre>"
        )
    return f"<div style='font-size:12px;max-width:100%;overflow-x:auto'>{body}</div>"
