"""Which page frames an alloc or free step is about (what a race's commute rule asks)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mmkit.events import Step

SHIFT = 12


@given(
    pfn=st.integers(0, 1 << 20),
    order=st.integers(0, 4),
    count=st.integers(1, 6),
    direction=st.sampled_from([1, -1, 0]),
    gap=st.integers(0, 3),
    probe=st.integers(-80, 80),
)
def test_covers_is_membership_of_frames(pfn, order, count, direction, gap, probe):
    pages = 1 << order
    stride = direction * (pages + gap) if count > 1 else 0
    if pfn + (count - 1) * stride < 0:
        stride = abs(stride)
    step = Step("free", "f", "free", pfn=pfn, size=pages << SHIFT, count=count, stride=stride)
    frames = set(step.frames(SHIFT))
    assert len(frames) == (pages if stride == 0 else count * pages)
    assert step.covers(pfn + probe, SHIFT) is (pfn + probe in frames)
    for f in frames:
        assert step.covers(f, SHIFT)


def test_a_bulk_free_is_about_each_of_its_tables_and_nothing_else():
    step = Step("free", "f", "free", pfn=9, size=1 << SHIFT, count=3, tables=(9, 4, 30))
    assert list(step.frames(SHIFT)) == [9, 4, 30]
    assert [f for f in range(40) if step.covers(f, SHIFT)] == [4, 9, 30]


def test_a_descending_run_of_blocks_covers_the_blocks_below_its_first():
    # four 2 MiB blocks (512 pages) handed out last-freed first: 0x4600, 0x4400, ...
    step = Step("free", "f", "free", pfn=0x4600, size=2 << 20, count=4, stride=-512)
    assert step.covers(0x4000, SHIFT) and step.covers(0x47FF, SHIFT)
    assert not step.covers(0x3FFF, SHIFT) and not step.covers(0x4800, SHIFT)
    assert len(set(step.frames(SHIFT))) == 4 * 512


def test_a_ptdump_read_never_commutes_with_a_free_of_the_table_it_holds():
    from mmkit.scenarios.races import ptdump_race

    race = ptdump_race("arm64-64k-42", "naive")
    commutes = race.also_independent
    table = 0x4321
    read = Step("read", "walk_pte", "pte = READ_ONCE(*ptep)", table=table, index=0, thread="P")
    read.result = (7, table)
    for free in (
        Step("free", "f", "free", pfn=table - 5, size=1 << 16, count=3, tables=(5, table, 9)),
        Step("free", "f", "free", pfn=table + 2, size=1 << 16, count=3, stride=-1),
        Step("free", "f", "free", pfn=table, size=1 << 16),
    ):
        free.thread = "H"
        assert not commutes(read, free), free
    elsewhere = Step("free", "f", "free", pfn=table + 100, size=1 << 16, count=3, stride=-1)
    elsewhere.thread = "H"
    assert commutes(read, elsewhere)
