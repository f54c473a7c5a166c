"""The Stepper's text panes: where it is, what it did and will do, and the kernel log.

Plain functions of the session's records, returning HTML for ``ipywidgets.HTML``; every
address comes from ``Step.describe()`` or ``KernelEvent.report()``, so it is hex.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from mmkit.events import KernelEvent, Step
from mmkit.widgets._stepper_session import StepSession

__all__ = ["PANE", "log_html", "status_html"]

#: a bounded, scrolling box
PANE = "max-height:260px;overflow:auto;border:1px solid #ddd;padding:2px"
_LOG_NEW = "background:#fff3b0"


def status_html(s: StepSession, nxt: Step | None) -> str:
    """The position, the step just taken and the next one, and (for a race) each thread."""
    threads = len(s.sched.threads)
    mode = (
        "one step per entry (after Step into; Reset for coarse steps)"
        if s.fine
        else ("coarse steps")
    )
    rows = [
        f"<b>Step {s.position}</b> of {s.reached} reached · {mode}"
        + (
            f" · schedule: <code>{html.escape(' '.join(s.plan))}</code>"
            if s.plan and threads > 1
            else ""
        )
    ]
    if s.stepped_into is not None:
        rows.append("Stepped into: <code>" + html.escape(s.stepped_into.describe()) + "</code>")
    if s.history:
        last = s.history[-1]
        rows.append(
            f"Done ({html.escape(last.thread)}): <code>{html.escape(last.describe())}</code>"
        )
    if nxt is not None:
        extra = ""
        if nxt.coarse and (s.fine or s.kept_whole(nxt)):
            extra = f" <i>(covers {nxt.count} entries, taken whole even entry by entry)</i>"
        elif nxt.coarse:
            extra = (
                f" <i>(covers {nxt.count} entries: Step into replays them one by one, "
                "where the engine splits this step)</i>"
            )

        rows.append(
            f"Next ({html.escape(nxt.thread)}): <code>{html.escape(nxt.describe())}</code>" + extra
        )
    else:
        rows.append(f"<i>No next step: {html.escape(s.why_not())}.</i>")
    if threads > 1:
        for st in s.sched.status():
            state = st.state
            if st.waits_for:
                holders = [o.name for o in s.sched.status() if st.waits_for in o.holds]
                state += f" on {st.waits_for}" + (
                    f" (held by {', '.join(holders)})" if holders else ""
                )
            rows.append(f"{html.escape(st.name)}: {html.escape(state)}, {st.steps} steps")
    return "<div style='font-size:13px;line-height:1.4'>" + "<br>".join(rows) + "</div>"


def log_html(events: Sequence[KernelEvent], seen: int) -> str:
    """The kernel log, reports from index ``seen`` on highlighted as new."""
    if not events:
        body = "<span style='color:#777'>(the kernel log is empty)</span>"
    else:
        parts = []
        for i, ev in enumerate(events):
            style = _LOG_NEW if i >= seen else ""
            parts.append(f"<div style='{style};margin-bottom:4px'>{html.escape(ev.report())}</div>")
        body = "".join(parts)
    return (
        "<div style='font-size:12px;line-height:1.35'><b>Kernel log</b>"
        f"<div class='mmkit-log' style='{PANE};white-space:pre-wrap;line-height:1.35;"
        f"font-family:monospace'>{body}</div></div>"
    )
