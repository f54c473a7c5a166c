"""Every hotplug policy on one scenario: a table, a chart and two policies' trees.

:class:`PolicyComparison` runs :func:`mmkit.mm.compare.compare_policies` (boot, hot-add one
memory block, remove it, under every policy) and shows what each patch version did to the
kernel page tables: a table (:func:`mmkit.tables.comparison_frame`: tables allocated, freed
and left behind by level and region, TLB invalidations by kind, the kernel log), the chart
(:func:`mmkit.viz.compare.comparison_figure`) and, side by side, the page-table trees of two
policies after the removal (:func:`mmkit.viz.tree.tree_pair_figure`, coloured by state
against a snapshot taken after the hot-add: what the removal freed, and the empty tables a
policy left behind). A configuration picker and a ``rodata_full`` switch change the scenario
(``rodata_full`` maps the linear map with pages, so a removal has whole PTE tables to free);
results are cached per (configuration, block, ``rodata_full``).

>>> pc = PolicyComparison("arm64-4k-48")
>>> pc.block == default_block("arm64-4k-48")
True
>>> [o.tables_left for o in pc.outcomes][:3]
[0, 0, 4]
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from mmkit import arch, policies
from mmkit.errors import InvalidArgument, UnknownName
from mmkit.machine import Machine
from mmkit.mm.compare import PolicyOutcome, compare_policies
from mmkit.viz._common import config_label
from mmkit.widgets._base import ErrorPane, figure_widget
from mmkit.widgets._sync import sync_figure

__all__ = ["PolicyComparison", "default_block"]


def default_block(config: str) -> int:
    """The block the comparison hot-adds on ``config`` when none is given: the memory block
    half way up the physical range the linear map can hold, far from boot memory, so every
    table page that maps it (linear map and memmap) is its own and a removal may free it
    (the block the race scenarios of :mod:`mmkit.scenarios.races` remove too).

    >>> hex(default_block("arm64-4k-48"))
    '0x400040000000'
    """
    m = Machine(config, vmalloc_areas=0, record=False)
    mac = m.macros
    linear = ((mac["PAGE_END"] or 1 << 64) - mac["PAGE_OFFSET"]) & ((1 << 64) - 1)
    reach = min(linear, 1 << mac["MAX_PHYSMEM_BITS"]) // 2
    return int(m.memstart + (reach & ~(m.desc.memory_block_size - 1)))


class PolicyComparison:
    """Compare every policy on one hot-add / hot-remove of ``block`` on ``config``.

    Attributes:
        config_picker: ``Dropdown`` of the configurations; ``rodata_full``: ``Checkbox``.
        block_text: ``Text`` with the block's physical address (hex; edit to change it).
        table: ``HTML`` of :func:`mmkit.tables.comparison_frame`.
        chart: ``go.FigureWidget`` of :func:`mmkit.viz.compare.comparison_figure`.
        left_picker, right_picker: the two policies whose trees are shown.
        trees: ``go.FigureWidget`` of :func:`mmkit.viz.tree.tree_pair_figure`.
        outcomes: the :class:`~mmkit.mm.compare.PolicyOutcome` rows shown now.
        errors: the :class:`~mmkit.widgets._base.ErrorPane`; ``widget`` the container.
    """

    def __init__(
        self,
        config: str = "arm64-4k-48",
        block: int | None = None,
        *,
        rodata_full: bool = False,
        left: str = "v6",
        right: str = "v5.7",
    ) -> None:
        names = policies.names()
        for p in (left, right):
            if p not in names:
                raise UnknownName(f"unknown hotplug policy {p!r}", choices=names)
        if config not in arch.names():
            raise UnknownName(f"unknown configuration {config!r}", choices=arch.names())
        self.config = config
        self.block = default_block(config) if block is None else block
        self.rodata_full_value = rodata_full
        self.pair = (left, right)
        self._outcomes: dict[tuple[str, int, bool], list[PolicyOutcome]] = {}
        self._machines: dict[tuple[str, int, bool, str], tuple[Machine, Any]] = {}
        self._syncing = False
        self.errors = ErrorPane()
        self.outcomes = self._compute()

        self.title = widgets.HTML()
        self.config_picker = widgets.Dropdown(
            options=arch.names(),
            value=config,
            description="Configuration",
            style={"description_width": "initial"},
        )
        self.rodata_full = widgets.Checkbox(
            value=rodata_full, description="rodata_full (page-granular linear map)", indent=False
        )
        self.block_text = widgets.Text(
            value=f"{self.block:#x}",
            description="Block at",
            continuous_update=False,
            style={"description_width": "initial"},
            layout=widgets.Layout(width="260px"),
        )
        self.table = widgets.HTML()
        self.chart = figure_widget(self.static_chart())
        self.left_picker = widgets.Dropdown(
            options=names, value=left, description="Left tree", layout=widgets.Layout(width="200px")
        )
        self.right_picker = widgets.Dropdown(
            options=names,
            value=right,
            description="Right tree",
            layout=widgets.Layout(width="200px"),
        )
        self.trees = figure_widget(self.static_trees())

        guard = self.errors.guard
        self.config_picker.observe(guard(self._on_config), names="value")
        self.rodata_full.observe(guard(self._on_rodata), names="value")
        self.block_text.observe(guard(self._on_block), names="value")
        self.left_picker.observe(guard(self._on_pair), names="value")
        self.right_picker.observe(guard(self._on_pair), names="value")

        wrap = widgets.Layout(flex_flow="row wrap", align_items="center", width="100%")
        self.widget = widgets.VBox(
            [
                self.title,
                widgets.HBox([self.config_picker, self.block_text, self.rodata_full], layout=wrap),
                self.errors.widget,
                self.table,
                self.chart,
                widgets.HBox([self.left_picker, self.right_picker], layout=wrap),
                self.trees,
            ],
            layout=widgets.Layout(width="100%", max_width="1200px"),
        )
        self._show(trees=False, chart=False)

    # ------------------------------------------------------------------ state
    def key(self) -> tuple[str, int, bool]:
        """The cache key of the scenario shown now: (configuration, block, rodata_full)."""
        return (self.config, self.block, self.rodata_full_value)

    def _compute(self) -> list[PolicyOutcome]:
        key = self.key()
        if key not in self._outcomes:
            self._outcomes[key] = compare_policies(
                self.config, blocks=[self.block], rodata_full=self.rodata_full_value
            )
        return self._outcomes[key]

    def machine_after(self, policy: str) -> tuple[Machine, Any]:
        """``policy``'s machine once the block is removed, and the tree snapshot taken after
        the hot-add (what the trees are coloured against); cached."""
        from mmkit.viz.tree import snapshot

        key = (*self.key(), policy)
        if key not in self._machines:
            m = Machine(self.config, policy=policy, rodata_full=self.rodata_full_value)
            size = m.desc.memory_block_size
            m.hot_add(self.block, size)
            snap = snapshot(m)
            m.hot_remove(self.block, size)
            self._machines[key] = (m, snap)
        return self._machines[key]

    def frame(self) -> Any:
        """The comparison as a pandas DataFrame (:func:`mmkit.tables.comparison_frame`)."""
        from mmkit.tables import comparison_frame

        return comparison_frame(self.outcomes)

    def static_chart(self) -> go.Figure:
        """The chart of the outcomes shown now (the figure without widgets)."""
        from mmkit.viz.compare import comparison_figure

        return comparison_figure(self.outcomes)

    def static_trees(self) -> go.Figure:
        """The two chosen policies' trees after the removal, side by side."""
        from mmkit.viz.tree import tree_pair_figure

        (ml, sl), (mr, sr) = (self.machine_after(p) for p in self.pair)
        return tree_pair_figure(
            ml,
            mr,
            titles=(f"{self.pair[0]}: after removal", f"{self.pair[1]}: after removal"),
            since=(sl, sr),
            color="state",
        )

    # ---------------------------------------------------------------- driving
    def select(
        self,
        config: str | None = None,
        *,
        block: int | None = None,
        rodata_full: bool | None = None,
    ) -> None:
        """Show the scenario on ``config`` (its default block unless ``block`` is given),
        with ``rodata_full`` if given: what the pickers do."""
        if config is not None and config not in arch.names():
            raise UnknownName(f"unknown configuration {config!r}", choices=arch.names())
        new_config = config or self.config
        new_block = block
        if new_block is None and new_config == self.config:
            new_block = self.block
        elif new_block is None:
            try:
                new_block = default_block(new_config)
            except Exception:
                self._sync_controls()  # the picker goes back to what is shown
                raise
        if isinstance(new_block, bool) or not isinstance(new_block, int) or new_block < 0:
            raise InvalidArgument(f"block={new_block!r}: a physical address, e.g. 0x400040000000")
        new_rf = self.rodata_full_value if rodata_full is None else bool(rodata_full)
        old = (self.config, self.block, self.rodata_full_value)
        self.config, self.block, self.rodata_full_value = new_config, new_block, new_rf
        try:
            self.outcomes = self._compute()
            self.static_trees()  # a block the trees cannot take fails here, not half-drawn
        except Exception:
            self.config, self.block, self.rodata_full_value = old
            self._sync_controls()
            raise
        self._sync_controls()
        self._show()

    def show_pair(self, left: str, right: str) -> None:
        """Show ``left``'s and ``right``'s trees side by side (the two tree pickers)."""
        for p in (left, right):
            if p not in policies.names():
                raise UnknownName(f"unknown hotplug policy {p!r}", choices=policies.names())
        self.pair = (left, right)
        self._sync_controls()
        sync_figure(self.trees, self.static_trees())

    # --------------------------------------------------------------- updating
    def _on_config(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            self.select(change["new"])

    def _on_rodata(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            self.select(rodata_full=change["new"])

    def _on_block(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        try:
            start = int(str(change["new"]).strip(), 0)
        except ValueError:
            self._sync_controls()
            raise InvalidArgument(
                f"block address {change['new']!r}: write it in hex, e.g. 0x400040000000"
            ) from None
        self.select(block=start)

    def _on_pair(self, _change: dict[str, Any]) -> None:
        if not self._syncing:
            self.show_pair(self.left_picker.value, self.right_picker.value)

    def _sync_controls(self) -> None:
        self._syncing = True
        try:
            self.config_picker.value = self.config
            self.rodata_full.value = self.rodata_full_value
            self.block_text.value = f"{self.block:#x}"
            self.left_picker.value, self.right_picker.value = self.pair
        finally:
            self._syncing = False

    def _show(self, *, chart: bool = True, trees: bool = True) -> None:
        desc = arch.get(self.config)
        size = desc.memory_block_size
        self.title.value = (
            f"<h3 style='margin:4px 0'>Every policy on {html.escape(config_label(desc))}</h3>"
            f"<div>hot-add the memory block [{self.block:#x}, {self.block + size:#x}) on node 0, "
            f"then remove it; rodata_full {'on' if self.rodata_full_value else 'off'}</div>"
        )
        self.table.value = self._table_html()
        if chart:
            sync_figure(self.chart, self.static_chart())
        if trees:
            sync_figure(self.trees, self.static_trees())

    def _table_html(self) -> str:
        # the configuration is in the title; the log goes under the table, one line per report
        frame = self.frame().drop(columns=["config", "kernel log"], errors="ignore").reset_index()
        table = frame.to_html(border=0, index=False, classes="mmkit-compare")
        # numbers right-aligned under their right-aligned headers, the policy name left
        table = (
            "<style>.mmkit-compare td{text-align:right;padding:2px 8px}"
            ".mmkit-compare td:first-child{text-align:left}</style>" + table
        )
        logs = "".join(
            f"<li><b>{html.escape(o.policy)}</b><pre style='margin:0;white-space:pre-wrap'>"
            f"{html.escape(chr(10).join(o.events))}</pre></li>"
            for o in self.outcomes
            if o.events
        )
        log = f"<details><summary>kernel log</summary><ul>{logs}</ul></details>" if logs else ""
        return f"<div style='overflow-x:auto;font-size:12px'>{table}</div>{log}"

    # ---------------------------------------------------------------- display
    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
