"""Rendering reports: :func:`format_reports`, the text table ``mmkit plugins`` prints."""

from __future__ import annotations

from collections.abc import Sequence

from mmkit.plugins._records import STATUSES, PluginReport
from mmkit.plugins._validate import GROUPS


def format_reports(reports: Sequence[PluginReport]) -> str:
    """An aligned text table of ``reports`` (``mmkit plugins``), fixes under their rows.

    >>> print(format_reports([PluginReport("mmkit.arch", "toy", "toy-dist", "1.0",
    ...     "toy:PLUGIN", "ok", provides=("toy-4k-30", "toy-4k-32"))]))
    GROUP       NAME  DISTRIBUTION  VERSION  STATUS  DETAILS
    mmkit.arch  toy   toy-dist      1.0      ok      toy-4k-30, toy-4k-32
    1 plugin: 1 ok
    """
    if not reports:
        return f"no plugins found in {', '.join(GROUPS)}"
    header = ("GROUP", "NAME", "DISTRIBUTION", "VERSION", "STATUS")
    rows = [(r.group, r.name, r.distribution, r.version or "-", r.status) for r in reports]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    indent = sum(widths) + 2 * len(widths)

    def line(cells: Sequence[str], details: str) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + "  " + details

    out = [line(header, "DETAILS").rstrip()]
    for report, row in zip(reports, rows, strict=True):
        # The table already names distribution[name]: drop that prefix from the message.
        message = report.message.removeprefix(f"{report.distribution}[{report.name}]: ")
        details = ", ".join(report.provides) if report.ok else message
        if report.ok and message:
            details = f"{details} ({message})" if details else message
        out.append(line(row, details).rstrip())
        if report.fix:
            out.append(" " * indent + f"fix: {report.fix}")
    counts = {s: sum(r.status == s for r in reports) for s in STATUSES}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    out.append(f"{len(reports)} plugin{'s' if len(reports) != 1 else ''}: {summary}")
    return "\n".join(out)
