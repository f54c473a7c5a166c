"""The plugin status panel: every architecture and policy plugin, and what became of it.

The notebook's ``mmkit plugins``: one row per entry point or runtime registration
(:func:`mmkit.plugins.reports`), its status coloured (``ok`` green, ``disabled`` grey, the
broken kinds red), what it provides or why it was refused, and the fix. **Rescan** reads the
installed metadata again (after ``%pip install`` of a plugin). A broken plugin shows here as
a row; it never stops the panel or the kit (see :mod:`mmkit.plugins` for each status).

>>> from mmkit import plugins
>>> from mmkit.plugins import POLICY_GROUP, _DemoPolicy
>>> with plugins.isolated(entries=()):
...     _ = plugins.register(POLICY_GROUP, "demo", _DemoPolicy())
...     panel = PluginStatus()
...     [(r.name, r.status) for r in panel.reports]
[('demo', 'ok')]
>>> "1 plugin: 1 ok" in panel.summary.value
True
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from mmkit import plugins
from mmkit.widgets._base import ErrorPane

__all__ = ["STATUS_COLOURS", "PluginStatus", "plugin_status_html"]

#: Background colour of each status in the panel (green: in use; grey: off; red: broken).
STATUS_COLOURS: dict[str, str] = {
    "ok": "#e8f5e9",
    "disabled": "#eeeeee",
    **{s: "#fdecea" for s in plugins.STATUSES if s not in ("ok", "disabled")},
}


def plugin_status_html(reports: list[plugins.PluginReport]) -> str:
    """The panel's table: group, name, distribution, version, status, details and fix."""
    if not reports:
        return f"<p>no plugins found in {html.escape(', '.join(plugins.GROUPS))}</p>"
    head = "".join(
        f"<th style='text-align:left;padding:2px 8px'>{h}</th>"
        for h in ("group", "name", "distribution", "version", "status", "details")
    )
    rows = []
    for r in reports:
        message = r.message.removeprefix(f"{r.distribution}[{r.name}]: ")
        details = ", ".join(r.provides) if r.ok else message
        if r.ok and message:
            details = f"{details} ({message})" if details else message
        fix = f"<br><i>fix: {html.escape(r.fix)}</i>" if r.fix else ""
        cells = (r.group, r.name, r.distribution, r.version or "-")
        rows.append(
            f"<tr class='mmkit-plugin-{html.escape(r.status)}' "
            f"style='background:{STATUS_COLOURS.get(r.status, '#fdecea')}'>"
            + "".join(f"<td style='padding:2px 8px'>{html.escape(c)}</td>" for c in cells)
            + f"<td style='padding:2px 8px'><b>{html.escape(r.status)}</b></td>"
            f"<td style='padding:2px 8px'>{html.escape(details)}{fix}</td></tr>"
        )
    return (
        "<table style='border-collapse:collapse;font-size:12px'>"
        f"<tr>{head}</tr>{''.join(rows)}</table>"
    )


class PluginStatus:
    """The plugin status panel (module docstring).

    Attributes:
        table: ``HTML`` of :func:`plugin_status_html`; ``summary``: ``HTML``, one line of
            counts by status.
        rescan_button: ``Button``; :meth:`rescan` is the same as a click.
        reports: the :class:`~mmkit.plugins.PluginReport` rows shown now.
        errors: the :class:`~mmkit.widgets._base.ErrorPane`; ``widget`` the container.
    """

    def __init__(self) -> None:
        self.errors = ErrorPane()
        self.summary = widgets.HTML()
        self.table = widgets.HTML()
        self.rescan_button = widgets.Button(
            description="Rescan", tooltip="read the installed plugins again (after %pip install)"
        )
        self.rescan_button.on_click(self.errors.guard(lambda _: self.rescan()))
        self.reports: list[plugins.PluginReport] = []
        self.widget = widgets.VBox(
            [widgets.HBox([self.rescan_button, self.summary]), self.table, self.errors.widget]
        )
        self.refresh()

    def refresh(self) -> None:
        """Show the registry's reports as they are now (registrations included)."""
        self.reports = plugins.reports()
        counts = {s: sum(r.status == s for r in self.reports) for s in plugins.STATUSES}
        n = len(self.reports)
        line = ", ".join(f"{k} {s}" for s, k in counts.items() if k)
        self.summary.value = f"{n} plugin{'s' if n != 1 else ''}: {line}" if n else "no plugins"
        self.table.value = plugin_status_html(self.reports)

    def rescan(self) -> None:
        """:func:`mmkit.plugins.rescan`, then :meth:`refresh`."""
        plugins.rescan()
        self.refresh()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
