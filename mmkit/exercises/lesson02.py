"""Lesson 02's exercises: what a memory hot-add builds, in which order, and where.

* **02a** how many page-table pages one hot-added memory block allocates (kernel-facts 2.2,
  4.5). ``arch_add_memory()`` (v5.4/v5.7 ``arch/arm64/mm/mmu.c``) maps the block in the
  linear map with ``__create_pgd_mapping()``, in blocks unless ``rodata_full`` (or
  ``debug_pagealloc``) passes ``NO_BLOCK_MAPPINGS | NO_CONT_MAPPINGS``, and
  ``__add_pages()`` maps its memmap with ``vmemmap_populate()``: 2 MiB PMD blocks with 4K
  pages (no PTE tables), base pages with 16K and 64K. A table page is allocated only where
  the walk finds an empty entry; tables the boot built are written into, not allocated.
  Checked by counting the ``alloc`` steps with note ``"table"`` in the engine's run of
  ``add_memory()`` (:func:`hot_add_tables`).
* **02b** the order of ``add_memory_resource()`` (kernel-facts 4.3: resource, hotplug lock,
  ``memblock_add_node()``, ``arch_add_memory()``, memory block devices,
  ``link_mem_sections()``, firmware map, unlock, onlining), a Parsons problem with one line
  that is no part of a hot-add (``memblock_free()``). Checked against the order in which an
  engine run performs those steps (:func:`add_memory_order`).
* **02c** the virtual address of the ``struct page`` of a pfn: ``pfn_to_page()`` with
  ``CONFIG_SPARSEMEM_VMEMMAP``; v5.4 ``arch/arm64/include/asm/memory.h`` defines ``vmemmap``
  as ``VMEMMAP_START`` minus the struct pages of the pfns below ``memstart_addr``, so the
  array is indexed from the first RAM pfn. Checked with
  :meth:`~mmkit.machine.Machine.vmemmap_va` (64-byte ``struct page``, kernel-facts 0).

>>> t = hot_add_tables("arm64-4k-48", 0x1_0000_0000, True)
>>> t.total, t.per_level
(513, {'pmd': 1, 'pte': 512})
>>> hot_add_tables("arm64-4k-48", 0x1_0000_0000, False).total
0
>>> add_memory_order()[:3]
('register_memory_resource()', 'mem_hotplug_begin()', 'memblock_add_node()')
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from mmkit.arch.arm64 import CONFIGS
from mmkit.errors import InvalidArgument
from mmkit.events import Step
from mmkit.exercises import Exercise, Feedback, Mistake, Variant, register
from mmkit.machine import Machine

__all__ = [
    "ADD_STEPS",
    "DISTRACTOR",
    "HOT_ADD_STARTS",
    "AddOrderExercise",
    "HotAddTables",
    "NewTablesExercise",
    "StructPageExercise",
    "add_memory_order",
    "hot_add_tables",
    "struct_page_inputs",
]

#: Block-aligned start addresses 02a picks from (those outside a configuration's linear
#: map are skipped for it).
HOT_ADD_STARTS: tuple[int, ...] = (
    0x1_0000_0000,
    0x10_0000_0000,
    0x40_0000_0000,
    0x100_0000_0000,
    0x4000_0000_0000,
)

_Pred = Callable[[Step], bool]

#: The steps of ``add_memory()`` 02b asks to order: label -> how to recognise it in a run.
ADD_STEPS: dict[str, _Pred] = {
    "register_memory_resource()": lambda s: "register_memory_resource" in s.line,
    "mem_hotplug_begin()": lambda s: s.action == "lock" and s.function == "add_memory_resource",
    "memblock_add_node()": lambda s: s.action == "memblock" and "memblock_add_node" in s.line,
    "__create_pgd_mapping() (the linear map)": lambda s: s.function == "__create_pgd_mapping",
    "vmemmap_populate() (the memmap)": lambda s: s.function == "vmemmap_populate",
    "create_memory_block_devices()": lambda s: s.function == "create_memory_block_devices",
    "link_mem_sections()": lambda s: s.function == "register_mem_sect_under_node",
    "firmware_map_add_hotplug()": lambda s: "firmware_map_add_hotplug" in s.line,
    "mem_hotplug_done()": lambda s: s.action == "unlock" and s.function == "add_memory_resource",
    "online_memory_block()": lambda s: s.function == "online_pages",
}
#: The line that belongs to hot-remove, not hot-add.
DISTRACTOR = "memblock_free()"


# ------------------------------------------------------------------------- engine
@dataclass(frozen=True)
class HotAddTables:
    """What one ``add_memory()`` of one block allocated in the kernel page tables."""

    config: str
    start: int
    size: int
    rodata_full: bool
    #: table pages allocated, per level name ("pud", "pmd", "pte")
    per_level: dict[str, int]
    #: the same, split by where the new table maps: "linear" or "vmemmap"
    per_region: dict[str, dict[str, int]]
    #: table pages that already existed and got entries written
    existing_written: int
    #: the new tables as the set difference of the machine's table pages, before and after
    new_table_pfns: frozenset[int]

    @property
    def total(self) -> int:
        return sum(self.per_level.values())


@cache
def _added(config: str, start: int, rodata_full: bool) -> tuple[Machine, tuple[Step, ...]] | None:
    m = Machine(config, rodata_full=rodata_full)
    before = len(m.history)
    try:
        m.add_memory(0, start, m.desc.memory_block_size)
    except InvalidArgument:  # outside this configuration's linear map
        return None
    return m, tuple(m.history[before:])


@cache
def hot_add_tables(config: str, start: int, rodata_full: bool) -> HotAddTables:
    """Run ``add_memory(0, start, block)`` on a booted ``config`` and count the table pages
    it allocated (its ``alloc`` steps with note ``"table"``)."""
    got = _added(config, start, rodata_full)
    if got is None:
        raise InvalidArgument(f"{config}: [{start:#x}, +1 block) does not fit the linear map")
    m, steps = got
    boot = Machine(config, rodata_full=rodata_full)
    lm_end = m.macros["PAGE_END"] or (1 << 64)
    per_level: dict[str, int] = {}
    per_region: dict[str, dict[str, int]] = {"linear": {}, "vmemmap": {}}
    new = set()
    for step in steps:
        if step.action != "alloc" or step.note != "table":
            continue
        for s in step.expand() if step.bulk else [step]:  # a bulk step: one per table
            assert s.level is not None and s.va is not None and s.pfn is not None
            per_level[s.level] = per_level.get(s.level, 0) + 1
            region = "linear" if m.macros["PAGE_OFFSET"] <= s.va < lm_end else "vmemmap"
            per_region[region][s.level] = per_region[region].get(s.level, 0) + 1
            new.add(s.pfn)
    written = {s.table for s in steps if s.action == "write" and s.table is not None}
    return HotAddTables(
        config,
        start,
        m.desc.memory_block_size,
        rodata_full,
        per_level,
        per_region,
        len(written - new),
        frozenset(set(m.pgtables.info) - set(boot.pgtables.info)),
    )


def _fits(config: str, start: int) -> bool:
    return _added(config, start, False) is not None


@cache
def add_memory_order(config: str = "arm64-4k-48") -> tuple[str, ...]:
    """The :data:`ADD_STEPS` in the order an engine run of ``add_memory()`` takes them."""
    m = Machine(config)  # onlines the block (memhp auto-online), as the kernel may
    before = len(m.history)
    m.add_memory(0, 0x1_0000_0000, m.desc.memory_block_size)
    steps = m.history[before:]
    first = {}
    for label, pred in ADD_STEPS.items():
        idx = next((i for i, s in enumerate(steps) if pred(s)), None)
        if idx is None:
            raise AssertionError(f"add_memory() on {config} took no {label} step")
        first[label] = idx
    return tuple(sorted(first, key=first.__getitem__))


def struct_page_inputs(seed: int) -> tuple[str, int]:
    """(configuration, pfn) of 02c's variant ``seed``: a pfn of boot RAM or of a block
    hot-added at 0x1_0000_0000 or above."""
    rng = random.Random(seed)
    config = CONFIGS[seed % len(CONFIGS)]
    shift = {"4k": 12, "16k": 14, "64k": 16}[config.split("-")[1]]
    pa = rng.choice((0x4000_0000, 0x8000_0000, 0x1_0000_0000, 0x1_4000_0000, 0x10_0000_0000))
    return config, (pa >> shift) + rng.randrange(0, 1 << 10)


@cache
def _machine(config: str) -> Machine:
    return Machine(config, record=False)


# ----------------------------------------------------------------------- exercises
def _hexes(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {lvl.upper()}" for lvl, n in sorted(counts.items())) or "none"


class NewTablesExercise(Exercise):
    """02a: how many page-table pages does hot-adding one block allocate?"""

    id = "02a"
    lesson = "02"
    title = "New page-table pages for one hot-added block"
    kind = "number"

    def variant(self, seed: int) -> Variant:
        rng = random.Random(seed)
        config = CONFIGS[(seed * 5 + 1) % len(CONFIGS)]
        starts = [s for s in HOT_ADD_STARTS if _fits(config, s)]
        start = starts[rng.randrange(len(starts))]
        rodata_full = bool(seed % 2)
        size = _machine(config).desc.memory_block_size
        mode = (
            "with <code>rodata_full</code> (the linear map in pages)"
            if rodata_full
            else "without <code>rodata_full</code> (blocks where they fit)"
        )
        return Variant(
            self.id,
            seed,
            f"On <b>{config}</b> (Linux v5.4 layout, QEMU virt: 2 GiB of boot RAM at "
            f"0x40000000), <code>add_memory(0, {start:#x}, {size:#x})</code> hot-adds one "
            f"memory block {mode}. How many <b>new page-table pages</b> does it allocate "
            "(linear map and vmemmap together)?",
            self.kind,
            hint="Walk both VAs down from the top: the block's linear-map address and its "
            "struct pages' vmemmap address. Count a table only where the entry above it is "
            "empty now; the boot already built the tables over boot RAM, and one table maps "
            "a lot (a 4K PMD table maps 1 GiB).",
            params={"config": config, "start": start, "rodata_full": rodata_full},
        )

    def _tables(self, v: Variant) -> HotAddTables:
        p = v.params
        return hot_add_tables(p["config"], p["start"], p["rodata_full"])

    def answer(self, variant: Variant) -> int:
        return self._tables(variant).total

    def check(self, variant: Variant, answer: Any) -> Feedback:
        t = self._tables(variant)
        right = t.total
        if answer == right:
            return Feedback(
                True,
                f"Right: {right}. Linear map: {_hexes(t.per_region['linear'])}; vmemmap: "
                f"{_hexes(t.per_region['vmemmap'])}; {t.existing_written} table page(s) the "
                "boot built got new entries instead.",
            )
        if 0 < answer - right <= t.existing_written:
            return Feedback(
                False,
                "Too many: you counted a table that the boot built, and it exists already: "
                "hot-add only writes entries into it. Count the tables under empty entries.",
            )
        other = hot_add_tables(t.config, t.start, not t.rodata_full).total
        if answer == other != right:
            if t.rodata_full:
                why = (
                    "rodata_full passes NO_BLOCK_MAPPINGS: the linear map is built of pages, "
                    "so it needs the tables under the blocks it would have used"
                )
            else:
                why = "without rodata_full the linear map uses blocks wherever they fit"
            return Feedback(False, f"That is the count for the other setting: {why}.")
        if answer < right:
            return Feedback(
                False,
                "Too few: some entry on the way down is still empty. Do both walks, the "
                "linear map and the vmemmap, and remember which granules map the vmemmap "
                "with base pages.",
            )
        return Feedback(
            False,
            "Too many: one table maps a large span (a PMD table on 4K maps 1 GiB), and "
            "existing tables are reused. Count only tables under empty entries.",
        )

    def solution(self, variant: Variant) -> str:
        t = self._tables(variant)
        vmemmap_note = (
            "4K maps the vmemmap with 2 MiB PMD blocks, so it never needs PTE tables"
            if t.config.split("-")[1] == "4k"
            else "16K and 64K map the vmemmap with base pages, in PTE tables"
        )
        return (
            f"{t.total} new table pages (engine run of add_memory: {_hexes(t.per_level)}). "
            f"The linear map needs {_hexes(t.per_region['linear'])}, the vmemmap "
            f"{_hexes(t.per_region['vmemmap'])}; {vmemmap_note}. "
            f"{t.existing_written} existing table page(s) only got entries written."
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        t = self._tables(variant)
        out = []
        if t.existing_written:
            out.append(Mistake(t.total + 1, "it exists already"))
        other = hot_add_tables(t.config, t.start, not t.rodata_full).total
        if other != t.total and other - t.total not in range(1, t.existing_written + 1):
            out.append(Mistake(other, "other setting"))
        return out


class AddOrderExercise(Exercise):
    """02b: put the steps of ``add_memory()`` in the order the kernel takes them."""

    id = "02b"
    lesson = "02"
    title = "The order of add_memory_resource()"
    kind = "order"

    def variant(self, seed: int) -> Variant:
        rng = random.Random(seed)
        labels = list(ADD_STEPS)
        picked = rng.sample(labels, 7)
        options = [*picked, DISTRACTOR]
        rng.shuffle(options)
        return Variant(
            self.id,
            seed,
            "Hot-adding a memory block (<code>add_memory()</code> → "
            "<code>add_memory_resource()</code>, Linux v5.4, auto-online on) takes these "
            "steps, but <b>one line below is no part of a hot-add</b>. Give the letters of "
            "the others in the order the kernel runs them, and leave that one out.",
            self.kind,
            tuple(options),
            hint="Memory is described before it is mapped, mapped before its devices "
            "exist, and a device must exist before anything can link to it. The lock "
            "brackets the work; onlining comes after it.",
            params={"picked": tuple(picked)},
        )

    def parse(self, variant: Variant, answer: Any) -> Any:
        got = super().parse(variant, answer)
        if not got:
            raise InvalidArgument("type the letters of the lines first, e.g. 'C A B'")
        return got

    def answer(self, variant: Variant) -> tuple[str, ...]:
        picked = set(variant.params["picked"])
        return tuple(x for x in add_memory_order() if x in picked)

    def check(self, variant: Variant, answer: Any) -> Feedback:
        got = tuple(answer)
        right = self.answer(variant)
        if DISTRACTOR in got:
            return Feedback(
                False,
                f"{DISTRACTOR} does not belong: hot-add frees nothing from memblock "
                "(try_remove_memory() calls it on hot-remove). Leave it out, order the rest.",
            )
        if len(set(got)) != len(got):
            return Feedback(False, "Each line once, please.")
        missing = set(right) - set(got)
        if missing:
            return Feedback(
                False,
                f"Order all {len(right)} lines that belong (you left out {len(missing)}); "
                f"only {DISTRACTOR} stays out.",
            )
        if got == right:
            return Feedback(True, "Right: that is the order the engine's run takes.")
        pos = {x: i for i, x in enumerate(got)}
        dev, link = "create_memory_block_devices()", "link_mem_sections()"
        if dev in pos and link in pos and pos[link] < pos[dev]:
            return Feedback(
                False,
                "Not yet: links need the device. link_mem_sections() creates nodeN/memoryM "
                "and memoryM/nodeN, and memoryM is registered by "
                "create_memory_block_devices().",
            )
        mb = "memblock_add_node()"
        mapped = [x for x in got if x.startswith(("__create_pgd", "vmemmap"))]
        if mb in pos and mapped and any(pos[x] < pos[mb] for x in mapped):
            return Feedback(
                False,
                "Not yet: memblock is not boot-time only. add_memory_resource() calls "
                "memblock_add_node() before arch_add_memory() maps anything.",
            )
        first_bad = next(i for i, (a, b) in enumerate(zip(got, right, strict=True)) if a != b)
        return Feedback(
            False,
            f"Not yet: the first {first_bad} line(s) are in place, then the order goes wrong.",
        )

    def solution(self, variant: Variant) -> str:
        right = self.answer(variant)
        letters = {o: chr(ord("A") + i) for i, o in enumerate(variant.options)}
        return (
            " → ".join(f"{letters[x]} {x}" for x in right)
            + f". {DISTRACTOR} is left out: it belongs to hot-remove. (Kernel-facts 4.3; "
            "the engine's add_memory() run takes them in this order.)"
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        right = list(self.answer(variant))
        out = [
            Mistake([*right, DISTRACTOR], "does not belong"),
            Mistake(list(reversed(right)), "Not yet"),
        ]
        dev, link = "create_memory_block_devices()", "link_mem_sections()"
        if dev in right and link in right:
            swapped = list(right)
            i, j = swapped.index(dev), swapped.index(link)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            out.append(Mistake(swapped, "links need the device"))
        return out


class StructPageExercise(Exercise):
    """02c: the vmemmap address of a pfn's ``struct page``."""

    id = "02c"
    lesson = "02"
    title = "Where is a page's struct page?"
    kind = "number"

    def variant(self, seed: int) -> Variant:
        config, pfn = struct_page_inputs(seed)
        m = _machine(config)
        return Variant(
            self.id,
            seed,
            f"On <b>{config}</b> (Linux v5.4 layout; RAM starts at "
            f"{m.boot_memory[0][0]:#x}, so <code>memstart_addr</code> = {m.memstart:#x}; "
            f"<code>VMEMMAP_START</code> = {m.macros['VMEMMAP_START']:#x}; "
            "<code>sizeof(struct page)</code> = 64), what is the virtual address of the "
            f"<code>struct page</code> of pfn <b>{pfn:#x}</b> (<code>pfn_to_page()</code>)? "
            "Answer in hex.",
            self.kind,
            hint="vmemmap is an array of struct page. Which pfn does its entry at "
            "VMEMMAP_START describe?",
            params={"config": config, "pfn": pfn},
        )

    def answer(self, variant: Variant) -> int:
        return _machine(variant.params["config"]).vmemmap_va(variant.params["pfn"])

    def check(self, variant: Variant, answer: Any) -> Feedback:
        m = _machine(variant.params["config"])
        pfn = variant.params["pfn"]
        right = self.answer(variant)
        if answer == right:
            return Feedback(True, f"Right: {right:#x}.")
        if answer == m.macros["VMEMMAP_START"] + (pfn << 6):
            return Feedback(
                False,
                "Not yet: the vmemmap is indexed from the first RAM pfn. VMEMMAP_START holds "
                "the struct page of memstart_addr's pfn, not of pfn 0: vmemmap's base is "
                "VMEMMAP_START minus (memstart_addr >> PAGE_SHIFT) struct pages.",
            )
        if answer == m.lm_va(pfn << m.desc.page_shift):
            return Feedback(
                False,
                "That is where the page itself is mapped (the linear map), not its struct "
                "page, which lives in the vmemmap.",
            )
        if answer == m.vmemmap_va(pfn) - (1 << 6) or answer == m.vmemmap_va(pfn) + (1 << 6):
            return Feedback(False, "Off by one struct page: count from memstart's pfn.")
        return Feedback(
            False,
            "Not yet: address = VMEMMAP_START + (pfn - (memstart_addr >> PAGE_SHIFT)) x "
            "sizeof(struct page). Check PAGE_SHIFT for this granule.",
        )

    def solution(self, variant: Variant) -> str:
        m = _machine(variant.params["config"])
        pfn = variant.params["pfn"]
        first = m.memstart >> m.desc.page_shift
        return (
            f"{self.answer(variant):#x} = VMEMMAP_START {m.macros['VMEMMAP_START']:#x} + "
            f"(pfn {pfn:#x} - first RAM pfn {first:#x}) x 64 bytes. The kernel defines "
            "vmemmap as VMEMMAP_START minus the struct pages of the pfns below "
            "memstart_addr, so no vmemmap is spent on the hole below RAM."
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        m = _machine(variant.params["config"])
        pfn = variant.params["pfn"]
        return (
            Mistake(m.macros["VMEMMAP_START"] + (pfn << 6), "indexed from the first RAM pfn"),
            Mistake(m.lm_va(pfn << m.desc.page_shift), "linear map"),
        )


register(NewTablesExercise())
register(AddOrderExercise())
register(StructPageExercise())
