"""vmalloc's walk keeps its table pointers as v5.4 ``mm/vmalloc.c`` does.

``vmap_pte_range()``: ``pte = pte_alloc_kernel(pmd, addr)`` once, then
``do { ... set_pte_at(..., pte, ...) } while (pte++, addr += PAGE_SIZE, addr != end)`` over
the whole PMD span; ``vmap_pmd_range()`` / ``vmap_pud_range()`` likewise keep one pointer
into their table across their span (``pmd++``, ``pud++``).
"""

from __future__ import annotations

import copy

from mmkit.machine import Machine
from mmkit.mm.hotplug import remove_memory
from mmkit.mm.vmalloc import vmalloc
from mmkit.pgtable.walk import translate
from mmkit.sched import Scheduler, Thread

GIB = 1 << 30


def test_one_upper_entry_read_per_span_and_one_pte_write_per_page():
    m = Machine("arm64-4k-48", vmalloc_areas=0)
    pmd_span = 1 << m.desc.geometry.pmd_shift
    pages = 4
    # an area that crosses a PMD boundary: two PTE tables under one PMD table
    middle = (m.macros["VMALLOC_START"] + m.macros["VMALLOC_END"]) // 2
    start = (middle & ~(pmd_span - 1)) - 2 * m.page_size  # nothing is mapped there at boot
    mark = len(m.history)
    m.run(vmalloc(m, pages * m.page_size, start=start))
    steps = m.history[mark:]
    unlocked = [s for s in steps if s.line.endswith("/* no lock */")]
    by_fn = {fn: sum(s.function == fn for s in unlocked) for fn in {s.function for s in unlocked}}
    assert by_fn == {"pud_alloc": 1, "pmd_alloc": 1, "pte_alloc_kernel": 2}
    writes = [s for s in steps if s.function == "vmap_pte_range"]
    assert len(writes) == pages
    assert len({s.table for s in writes}) == 2
    for i in range(pages):
        assert translate(m, start + i * m.page_size).ok


def _race():
    """teach-4k-39: the PMD table under the vmalloc/vmemmap PGD entry is shared with nothing
    else (kernel-facts 7.2's T); V maps two pages at the bottom of vmalloc."""
    base = Machine(
        "teach-4k-39", policy="naive", online_type="offline", vmalloc_areas=0, record=False
    )
    mac = base.macros
    linear = min(
        (mac["PAGE_END"] - mac["PAGE_OFFSET"]) & ((1 << 64) - 1),
        (1 << mac["MAX_PHYSMEM_BITS"]) - base.memstart,
    )
    start = base.memstart + linear - GIB
    base.add_memory(0, start, GIB)

    def make():
        m = copy.deepcopy(base)
        return m, [
            Thread("H", "hot-remove", 0, remove_memory(m, start, GIB)),
            Thread("V", "vmalloc(2 pages)", 1, vmalloc(m, 2 * m.page_size)),
        ]

    return Scheduler(make)


def test_the_pte_pointer_taken_once_serves_every_page_of_the_span():
    """V takes its pointer into T (pmd_alloc), H frees T, V goes on: pte_alloc_kernel reads
    and populates freed T, and *both* pages go into the PTE table hooked there, through the
    one pointer: neither translates. Re-walking from the PGD per page would have mapped the
    second page afresh."""
    s = _race()
    while s.peek()["V"].function != "pte_alloc_kernel":
        s.step("V")
    while not s.threads["H"].done:
        s.step("H")
    s.run()
    m = s.machine
    va = s.threads["V"].result
    assert not translate(m, va).ok and not translate(m, va + m.page_size).ok
    v_reads = [x for x in s.history if x.thread == "V" and x.line.endswith("/* no lock */")]
    assert [x.function for x in v_reads] == ["pmd_alloc", "pte_alloc_kernel"]
    assert any(e.kind == "use-after-free" for e in m.events)
