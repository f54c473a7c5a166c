"""The sysfs tree of nodes and memory blocks, with patch 1/3's stale link marked.

Memory hotplug shows up in sysfs as two kinds of device directories and the links between
them (v5.3/v5.4 ``drivers/base/memory.c`` and ``drivers/base/node.c``; the model is
:mod:`mmkit.mm.memory_block`):

* ``/sys/devices/system/node/nodeN``: one per online node (left column);
* ``/sys/devices/system/memory/memoryM``: one per memory block device, with its state
  (online, going-offline, offline) and, once onlined, its zone (right column);
* the links ``nodeN/memoryM`` (in the node's directory, a solid line) and ``memoryM/nodeN``
  (in the block's directory, a dotted line), made by ``register_mem_sect_under_node()``.

``unregister_memory()`` takes a block's directory away with every link inside it, but the
``nodeN/memoryM`` link lives in the node's directory: only
``unregister_memory_block_under_nodes()`` removes it. In v5.3, hot-remove called
``memblock_remove()`` first, so that function's ``get_nid_for_pfn()`` saw ``pfn_valid()``
false, found no node, and left the link behind, pointing at a directory that no longer
exists (:mod:`mmkit.scenarios.memblock_order`). The figure draws such a link in red, dashed,
to a dashed "removed" box, and says why it matters: the next hot-add of the block makes the
link again, ``sysfs_create_link_nowarn()`` returns ``-EEXIST`` and ``link_mem_sections()``'s
caller hits ``BUG_ON(ret)``. After that BUG the link is still there, now pointing at the
re-added directory; it stays red ("hit by the re-add").

Boot memory is many alike blocks (2 GB of boot memory is 16 blocks of 128 MB on v6.1): runs
of three or more consecutive blocks with the same state, zone, origin and links are folded
into one box (``memory1 … memory16``), and at most :data:`MAX_BOXES` boxes are drawn; the
figure says what it folded.

>>> from mmkit.scenarios.memblock_order import memblock_order
>>> sc = memblock_order("v5.3")
>>> frames = [f for f in sc.frames() if f.operation != "add again"]
>>> fig = sysfs_figure(sc.machine)
>>> [t.name for t in fig.data if t.name.startswith("stale")]
['stale link']
"""

from __future__ import annotations

import textwrap
from typing import Any

import plotly.graph_objects as go

from mmkit import _validate
from mmkit.arch import format_size
from mmkit.viz._common import OKABE_ITO, RED, machine_label
from mmkit.viz.sysfs_boxes import MAX_BOXES, StaleLink, SysfsBox, stale_links, sysfs_boxes

__all__ = ["MAX_BOXES", "StaleLink", "SysfsBox", "stale_links", "sysfs_boxes", "sysfs_figure"]

_STATE_COLORS = {
    "online": OKABE_ITO["green"],
    "going-offline": OKABE_ITO["yellow"],
    "offline": OKABE_ITO["orange"],
    "removed": "#FFFFFF",
    "more": "#DDDDDD",
}
_NODE_COLOR = OKABE_ITO["blue"]
_LINK_COLOR = OKABE_ITO["blue"]
_BACKLINK_COLOR = OKABE_ITO["sky"]
_X_NODE, _X_MEM = 0.0, 1.0


def _block_range(machine: Any, box: SysfsBox) -> str:
    size = machine.desc.memory_block_size
    return f"{box.first * size:#x}–{(box.last + 1) * size - 1:#x}"


def _hover_box(machine: Any, box: SysfsBox) -> str:
    lines = [f"<b>/sys/devices/system/memory/{box.label}</b>"]
    if box.state == "more":
        lines.append(f"not drawn: the figure shows at most {MAX_BOXES} boxes")
    elif box.state == "removed":
        lines.append("device removed (unregister_memory): no such directory")
    else:
        lines.append(f"state: {box.state}" + (f" (ZONE_{box.zone.upper()})" if box.zone else ""))
        lines.append(f"{box.origin} memory")
        if box.first in machine.blocks and box.state != "removed":
            from mmkit.mm.zones import valid_zones

            lines.append(f"valid_zones: {valid_zones(machine, box.first)}")
    lines.append(f"PA {_block_range(machine, box)}")
    size = machine.desc.memory_block_size
    lines.append(f"{box.count} x {format_size(size)} block" + ("s" if box.count > 1 else ""))
    return "<br>".join(lines)


def _box_text(machine: Any, box: SysfsBox) -> str:
    if box.state == "more":
        return box.label
    if box.state == "removed":
        what = "removed: no directory"
    else:
        what = box.state + (f", {box.zone}" if box.zone else "") + f" · {box.origin}"
    return f"{box.label}  <span style='color:#555555'>{what} · {_block_range(machine, box)}</span>"


def _wrap(text: str, width: int = 150) -> str:
    return "<br>".join(textwrap.wrap(text, width, break_on_hyphens=False))


def _stale_note(machine: Any, stale: list[StaleLink]) -> str:
    first = stale[0]
    kernel = getattr(machine, "kernel", "")
    link = f"/sys/devices/system/node/node{first.nid}/memory{first.block}"
    if first.why == "dangling":
        body = (
            f"Stale link: {link} -> ../../memory/memory{first.block}, whose directory was "
            f"removed. {kernel} hot-remove ran memblock_remove() before removing the block's "
            "devices, so get_nid_for_pfn() saw pfn_valid() false and "
            "unregister_memory_block_under_nodes() left the link. Why it matters: re-adding "
            f"memory{first.block} makes the link again; link_mem_sections() gets -EEXIST and "
            "add_memory_resource() hits BUG_ON(ret) (patch 1/3)."
        )
    else:
        body = (
            f"Stale link: {link} (left by the earlier hot-remove) was still there when the "
            "block came back: sysfs_create_link_nowarn() returned -EEXIST, "
            "link_mem_sections() failed and add_memory_resource() hit BUG_ON(ret), holding "
            "mem_hotplug_lock (patch 1/3)."
        )
    if len(stale) > 1:
        body += f" ({len(stale)} stale links in all.)"
    return _wrap(body)


def _edge(
    x0: float, y0: float, x1: float, y1: float
) -> tuple[list[float | None], list[float | None]]:
    return [x0, x1, None], [y0, y1, None]


def sysfs_figure(machine: Any, *, title: str | None = None) -> go.Figure:
    """The sysfs node/memory tree of ``machine`` (see the module docstring).

    Traces, in a fixed order (each always present, maybe empty): ``"nodeN/memoryM link"``,
    ``"memoryM/nodeN link"``, ``"stale link"`` (red, dashed), ``"link (hover)"`` (invisible
    markers at edge midpoints carrying each link's path), ``"node"`` devices, one trace per
    memory-block state (``"memory: online"``, ...), and ``"removed"`` boxes.
    """
    _validate.shaped(machine, "machine", "a Machine", "sysfs", "blocks")
    boxes = sysfs_boxes(machine)
    stale = stale_links(machine)
    stale_keys = {(s.nid, s.block): s for s in stale}
    y_of_block: dict[int, float] = {}
    for i, box in enumerate(boxes):
        for b in range(box.first, box.last + 1):
            y_of_block[b] = float(i)
    nodes = sorted(set(machine.sysfs.nodes) | {n for b in boxes for n in (*b.nodes, *b.backlinks)})
    rows = max(len(boxes), len(nodes), 1)
    y_of_node = {
        n: (rows - 1) / 2 if len(nodes) == 1 else i * (rows - 1) / max(len(nodes) - 1, 1)
        for i, n in enumerate(nodes)
    }

    link_x: list[float | None] = []
    link_y: list[float | None] = []
    back_x: list[float | None] = []
    back_y: list[float | None] = []
    stale_x: list[float | None] = []
    stale_y: list[float | None] = []
    mid_x: list[float] = []
    mid_y: list[float] = []
    mid_text: list[str] = []
    off = 0.12  # the two links of a pair run side by side
    for box in boxes:
        yb = y_of_block[box.first]
        for n in box.nodes:
            yn = y_of_node[n]
            is_stale = any((n, b) in stale_keys for b in range(box.first, box.last + 1))
            xs, ys = _edge(_X_NODE, yn - off, _X_MEM, yb - off)
            (stale_x if is_stale else link_x).extend(xs)
            (stale_y if is_stale else link_y).extend(ys)
            many = f" (x {box.count})" if box.count > 1 else ""
            target = f"memory{box.first}" + (f"…{box.last}" if box.count > 1 else "")
            mid_x.append(0.35)
            mid_y.append(yn + (yb - yn) * 0.35 - off)
            mid_text.append(
                f"<b>/sys/devices/system/node/node{n}/{target}</b>{many}<br>"
                f"-> ../../memory/{target}<br>lives in node{n}'s directory"
                + ("<br><b>STALE</b>: see the note below" if is_stale else "")
            )
        for n in box.backlinks:
            yn = y_of_node[n]
            xs, ys = _edge(_X_NODE, yn + off, _X_MEM, yb + off)
            back_x.extend(xs)
            back_y.extend(ys)
            target = f"memory{box.first}" + (f"…{box.last}" if box.count > 1 else "")
            mid_x.append(0.65)
            mid_y.append(yn + (yb - yn) * 0.65 + off)
            mid_text.append(
                f"<b>/sys/devices/system/memory/{target}/node{n}</b><br>"
                f"-> ../../node/node{n}<br>lives in the block's directory (goes with it)"
            )

    traces: list[go.BaseTraceType] = [
        go.Scatter(
            name="nodeN/memoryM link",
            x=link_x,
            y=link_y,
            mode="lines",
            line={"color": _LINK_COLOR, "width": 2},
            hoverinfo="skip",
        ),
        go.Scatter(
            name="memoryM/nodeN link",
            x=back_x,
            y=back_y,
            mode="lines",
            line={"color": _BACKLINK_COLOR, "width": 2, "dash": "dot"},
            hoverinfo="skip",
        ),
        go.Scatter(
            name="stale link",
            x=stale_x,
            y=stale_y,
            mode="lines",
            line={"color": RED, "width": 3, "dash": "dash"},
            hoverinfo="skip",
            showlegend=bool(stale),
        ),
        go.Scatter(
            name="link (hover)",
            x=mid_x,
            y=mid_y,
            mode="markers",
            marker={"size": 10, "color": "rgba(0,0,0,0)"},
            hovertemplate="%{text}<extra></extra>",
            text=mid_text,
            showlegend=False,
        ),
        go.Scatter(
            name="node",
            x=[_X_NODE] * len(nodes),
            y=[y_of_node[n] for n in nodes],
            mode="markers+text",
            marker={"symbol": "circle", "size": 22, "color": _NODE_COLOR},
            text=[f"node{n}" for n in nodes],
            textposition="middle left",
            textfont={"size": 13},
            hovertemplate="<b>/sys/devices/system/node/%{text}</b><extra></extra>",
            showlegend=False,
        ),
    ]
    for state in ("online", "going-offline", "offline", "removed", "more"):
        members = [b for b in boxes if b.state == state]
        traces.append(
            go.Scatter(
                name={"removed": "removed (no directory)", "more": "not drawn"}.get(
                    state, f"memory: {state}"
                ),
                x=[_X_MEM] * len(members),
                y=[y_of_block[b.first] for b in members],
                mode="markers+text",
                marker={
                    "symbol": "square-open" if state == "removed" else "square",
                    "size": 18,
                    "color": RED if state == "removed" else _STATE_COLORS[state],
                    "line": {"color": "#333333", "width": 1},
                },
                text=[_box_text(machine, b) for b in members],
                textposition="middle right",
                textfont={"size": 12},
                customdata=[_hover_box(machine, b) for b in members],
                hovertemplate="%{customdata}<extra></extra>",
                showlegend=bool(members),
            )
        )

    annotations: list[dict[str, Any]] = []
    for s in stale:
        yb, yn = y_of_block[s.block], y_of_node[s.nid]
        annotations.append(
            {
                "name": f"stale-node{s.nid}-memory{s.block}",
                "x": 0.5,
                "y": yn + (yb - yn) * 0.5 - off,
                "xref": "x",
                "yref": "y",
                "text": f"<b>stale: node{s.nid}/memory{s.block}</b>"
                + (" (-EEXIST on re-add)" if s.why == "hit" else " (dangling)"),
                "showarrow": True,
                "arrowcolor": RED,
                "ax": 0,
                "ay": 26,
                "font": {"color": RED, "size": 12},
                "bgcolor": "rgba(255,255,255,0.9)",
            }
        )
    notes: list[tuple[str, str]] = []
    if stale:
        notes.append((_stale_note(machine, stale), RED))
    folded = [b for b in boxes if b.count > 1 and b.state != "more"]
    more = [b for b in boxes if b.state == "more"]
    if folded or more:
        parts = [f"{b.label} folded into one box (same state, zone and links)" for b in folded]
        parts += [f"{b.count} more blocks not drawn (at most {MAX_BOXES} boxes)" for b in more]
        notes.append(("; ".join(parts) + ".", "#555555"))
    y = 0.0
    for i, (text, color) in enumerate(notes):
        annotations.append(
            {
                "name": "stale-note" if color == RED else "fold-note",
                "xref": "paper",
                "yref": "paper",
                "x": 0,
                "y": y,
                "yshift": -8 - 16 * sum(t.count("<br>") + 1 for t, _ in notes[:i]),
                "xanchor": "left",
                "yanchor": "top",
                "align": "left",
                "showarrow": False,
                "text": text,
                "font": {"color": color, "size": 11},
            }
        )
    note_lines = sum(t.count("<br>") + 1 for t, _ in notes)

    n_links = len(machine.sysfs.links)
    sub = (
        f"{len(machine.sysfs.memory)} memory block devices of "
        f"{format_size(machine.desc.memory_block_size)}, {len(machine.sysfs.nodes)} "
        f"node{'s' if len(machine.sysfs.nodes) != 1 else ''}, {n_links} links"
        + (f"; <span style='color:{RED}'><b>{len(stale)} stale link</b></span>" if stale else "")
    )
    head = f"{title or 'sysfs: nodes and memory blocks'}, {machine_label(machine)}"
    fig = go.Figure(data=traces)
    height = int(min(800, max(420, 170 + 44 * rows + 16 * note_lines)))
    fig.update_layout(
        template="plotly_white",
        title={"text": f"{head}<br><sup>{sub}</sup>", "x": 0.01, "xanchor": "left"},
        height=height,
        margin={"l": 90, "r": 20, "t": 110, "b": 30 + 16 * note_lines},
        hovermode="closest",
        showlegend=True,
        legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.0, "yanchor": "bottom"},
        xaxis={"range": [-0.35, 2.6], "visible": False, "fixedrange": True},
        yaxis={"range": [rows - 0.4, -0.6], "visible": False},
        annotations=annotations,
    )
    return fig
