"""plotly views of the engine's records (import this module only where plotly is installed).

Every figure here is a plain :class:`plotly.graph_objects.Figure`: it renders in JupyterLab,
in an exported HTML page and on platforms without widgets, and it is the static fallback of
the matching widget in :mod:`mmkit.widgets`. Each is deterministic: the same state gives the
same ``to_dict()``.

* :func:`layout_figure`: the kernel VA layout of a configuration, with V7's overlap test;
* :func:`tree_figure` (and :func:`tree_diff_figure`, :func:`tree_pair_figure`,
  :func:`update_tree_figure`, :func:`snapshot`): the kernel page tables as a tree;
* :func:`sysfs_figure`: nodes, memory blocks and their links (patch 1/3's stale link);
* :func:`memblock_figure`: ``memblock.memory`` and ``memblock.reserved``;
* :func:`timeline_figure`: a swimlane of an interleaving of threads;
* :func:`comparison_figure`: what each hotplug policy did to the page tables.
"""

from __future__ import annotations

from mmkit.viz.compare import comparison_figure
from mmkit.viz.layout import KIND_COLORS, layout_figure, pgd_boundaries
from mmkit.viz.memblock import memblock_figure
from mmkit.viz.sysfs import stale_links, sysfs_figure
from mmkit.viz.timeline import event_steps, lock_holds, timeline_figure
from mmkit.viz.tree import (
    STATE_COLORS,
    snapshot,
    tree_diff_figure,
    tree_figure,
    tree_pair_figure,
    update_tree_figure,
)
from mmkit.viz.tree_model import TreeSnapshot, tree_nodes

__all__ = [
    "KIND_COLORS",
    "STATE_COLORS",
    "TreeSnapshot",
    "comparison_figure",
    "event_steps",
    "layout_figure",
    "lock_holds",
    "memblock_figure",
    "pgd_boundaries",
    "snapshot",
    "stale_links",
    "sysfs_figure",
    "timeline_figure",
    "tree_diff_figure",
    "tree_figure",
    "tree_nodes",
    "tree_pair_figure",
    "update_tree_figure",
]
