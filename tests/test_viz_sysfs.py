"""The sysfs figure against the machine's own sysfs model and patch 1/3's kernel facts."""

from __future__ import annotations

import re

import pytest

from mmkit.machine import Machine
from mmkit.scenarios.memblock_order import memblock_order
from mmkit.viz.sysfs import MAX_BOXES, stale_links, sysfs_boxes, sysfs_figure


def _trace(fig, name):
    (trace,) = [t for t in fig.data if t.name == name]
    return trace


def _after(kernel: str, operation: str):
    """The scenario's machine once every step of ``operation`` has been performed."""
    sc = memblock_order(kernel)
    ops = [name for name, _ in sc.operations()]
    nxt = ops[ops.index(operation) + 1] if operation != ops[-1] else None
    for frame in sc.frames():
        if frame.operation == nxt:  # the first step of the next operation: a lock
            assert frame.step.action == "lock"
            break
    return sc


def _dangling(machine) -> set[tuple[int, int]]:
    """Ground truth: node links whose memory directory is gone."""
    s = machine.sysfs
    return {
        (w[1], t[1])
        for w, t in s.links
        if w[0] == "node" and t[0] == "memory" and t[1] not in s.memory
    }


@pytest.mark.parametrize("kernel", ["v5.3", "v5.4", "v5.5"])
def test_stale_link_only_in_v53_after_remove(kernel):
    before = _after(kernel, "offline")
    fig = sysfs_figure(before.machine)
    assert not _dangling(before.machine)
    assert list(_trace(fig, "stale link").x) == []
    assert not [a for a in fig.layout.annotations if (a.name or "").startswith("stale")]

    after = _after(kernel, "remove")
    fig = sysfs_figure(after.machine)
    truth = _dangling(after.machine)
    stale = _trace(fig, "stale link")
    notes = [a for a in fig.layout.annotations if (a.name or "").startswith("stale")]
    if kernel == "v5.3":
        assert truth == {(0, after.block)}
        assert len(stale.x) == 3 and stale.line.dash == "dash" and stale.line.color == "#E41A1C"
        # the stale edge ends at the drawn "removed" box of that block
        removed = _trace(fig, "removed (no directory)")
        assert [t.split("<")[0].strip() for t in removed.text] == [f"memory{after.block}"]
        assert stale.y[1] == pytest.approx(removed.y[0] - 0.12)
        note = next(a for a in notes if a.name == "stale-note").text.replace("<br>", " ")
        assert f"node0/memory{after.block}" in note and "-EEXIST" in note
        assert "BUG_ON" in note and "link_mem_sections()" in note
        assert any(a.name == f"stale-node0-memory{after.block}" for a in notes)
    else:
        assert truth == set()
        assert list(stale.x) == [] and notes == []
        assert list(_trace(fig, "removed (no directory)").x) == []


def test_v53_link_stays_marked_after_the_bug():
    sc = memblock_order("v5.3")
    sc.run()
    m = sc.machine
    assert m.oops is not None and m.oops.function == "add_memory_resource"
    # the block is back, so the link dangles no more: it is the one the re-add tripped on
    assert not _dangling(m)
    assert stale_links(m)[0].why == "hit" and stale_links(m)[0].block == sc.block
    fig = sysfs_figure(m)
    assert len(_trace(fig, "stale link").x) == 3
    note = next(a for a in fig.layout.annotations if a.name == "stale-note").text
    assert "-EEXIST" in note


def test_every_link_and_device_is_drawn():
    m = Machine("arm64-4k-48")
    m.add_memory(0, 0x1_0000_0000, m.desc.memory_block_size)
    fig = sysfs_figure(m)
    hover = list(_trace(fig, "link (hover)").text)
    counts = [int(re.search(r"\(x (\d+)\)", h).group(1)) if "(x " in h else 1 for h in hover]
    assert sum(counts) == len(m.sysfs.links)
    drawn = [
        t.split("<")[0].strip() for tr in fig.data if tr.name.startswith("memory:") for t in tr.text
    ]
    assert sorted(drawn) == sorted(f"memory{b}" for b in m.sysfs.memory)
    assert list(_trace(fig, "node").text) == [f"node{n}" for n in sorted(m.sysfs.nodes)]
    # the boot blocks say so, the hot-added one too, with its physical range in hex
    online = _trace(fig, "memory: online")
    new = m.block_of(0x1_0000_0000)
    (text,) = [t for t in online.text if t.startswith(f"memory{new} ")]
    size = m.desc.memory_block_size
    assert "hot-added" in text and f"{new * size:#x}–{(new + 1) * size - 1:#x}" in text


def test_boot_blocks_fold_and_many_blocks_are_capped():
    m = Machine("arm64-4k-48", kernel="v6.1")  # 128 MB blocks: 16 boot blocks
    boot = sorted(m.blocks)
    assert len(boot) == 16
    boxes = sysfs_boxes(m)
    assert len(boxes) == 1 and (boxes[0].first, boxes[0].last, boxes[0].count) == (
        boot[0],
        boot[-1],
        16,
    )
    fig = sysfs_figure(m)
    fold = next(a for a in fig.layout.annotations if a.name == "fold-note").text
    assert f"memory{boot[0]} … memory{boot[-1]} (16 blocks) folded" in fold
    # 30 hot-added blocks, every other one offline: nothing to fold, so the cap applies
    size = m.desc.memory_block_size
    base = 0x1_0000_0000
    for i in range(30):
        m.add_memory(0, base + i * size, size)
        if i % 2:
            m.offline_block(m.block_of(base + i * size))
    boxes = sysfs_boxes(m)
    assert len(boxes) == MAX_BOXES
    assert sum(b.count for b in boxes) == len(m.sysfs.memory)
    assert boxes[-1].state == "more"
    fig = sysfs_figure(m)
    fold = next(a for a in fig.layout.annotations if a.name == "fold-note").text
    assert f"{boxes[-1].count} more blocks not drawn" in fold


def test_hex_only_titles_and_determinism():
    sc = _after("v5.3", "remove")
    fig = sysfs_figure(sc.machine)
    title = fig.layout.title.text
    assert "arm64-4k-48" in title and "v5.3" in title and "teaching" not in title
    texts = [t for tr in fig.data if tr.text is not None for t in tr.text]
    texts += [a.text for a in fig.layout.annotations]
    for t in texts:  # addresses are hex: no decimal number of 5 digits or more
        assert not re.search(r"(?<![0-9a-fA-Fx#])\d{5,}", t), t
    assert fig.to_dict() == sysfs_figure(sc.machine).to_dict()
    teach = sysfs_figure(Machine("teach-4k-39"))
    assert "teaching layout" in teach.layout.title.text
    assert sysfs_figure(sc.machine, title="mine").layout.title.text.startswith(
        "mine, arm64-4k-48, Linux v5.3<br>"
    )


@pytest.mark.parametrize("kernel", ["v5.4", "v5.7", "v6.1"])
def test_memory_boxes_show_the_engines_zone_and_valid_zones(kernel):
    from mmkit.mm.zones import valid_zones

    m = Machine("arm64-4k-48", kernel=kernel, online_type="online_movable")
    m.add_memory(0, 0x1_0000_0000, m.desc.memory_block_size)
    fig = sysfs_figure(m)
    hovers = [h for t in fig.data if t.customdata is not None for h in t.customdata]
    for box in sysfs_boxes(m):
        if box.state != "online" or box.count != 1:
            continue
        hover = next(h for h in hovers if f"/memory{box.first}</b>" in h)
        assert f"ZONE_{m.blocks[box.first].zone.upper()}" in hover
        assert f"valid_zones: {valid_zones(m, box.first)}" in hover
    # the hot-added block went to ZONE_MOVABLE, boot memory to an era's DMA zone
    zones = {m.blocks[b].zone for b in m.blocks}
    assert "Movable" in zones and zones & {"DMA", "DMA32"}
