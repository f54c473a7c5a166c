"""``/sys/kernel/debug/page_tables/kernel`` of an x86_64 machine (v5.4 dump_pagetables.c).

:func:`ptdump` walks the machine's ``init_top_pgt`` the way
``ptdump_walk_pgd_level_core()`` does: every PGD entry from index 0 (the user half too; the
hypervisor guard hole is noted as none whatever it holds, ``is_hypervisor_range()``), down
through ``walk_p4d_level()`` (straight to the PUD table when ``PTRS_PER_P4D`` is 1),
``walk_pud_level()``, ``walk_pmd_level()`` and ``walk_pte_level()``; a none entry, a large
(PSE) one or a non-present one is one ``note_page()`` at its level (1 = pgd ... 5 = pte). A
line is printed when the protection, the effective protection, the level changes or an
address marker is crossed, and the walk ends with the flush at
``normalize_addr(PTRS_PER_PGD * PGD_LEVEL_MULT)``, which wraps to 0 (the kernel's last line
really ends at ``0x0000000000000000``). ``effective_prot()`` ANDs USER and RW down the walk
and ORs NX. Addresses are sign-extended from ``__VIRTUAL_MASK_SHIFT`` (``normalize_addr()``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from mmkit.errors import InvalidArgument
from mmkit.mm.ptdump_records import PtdumpMarker, PtdumpRange, PtdumpRecord
from mmkit_x86_64.pte import LEVEL_NAMES, pfn_mask, ptdump_columns, ptdump_size

if TYPE_CHECKING:
    from mmkit.machine import Machine

__all__ = ["address_markers", "format_records", "ptdump", "ptdump_walk"]

_M64 = (1 << 64) - 1
_TOP = 1 << 64
_USER_RW = 0b110
_NX = 1 << 63
_PSE = 1 << 7
_PRESENT = 1


def address_markers(macros: dict[str, int]) -> list[tuple[int, str, int]]:
    """``address_markers[]`` for x86_64 as ``pt_dump_init()`` fills it: ``(start, name,
    max_lines)``, with LDT (``CONFIG_MODIFY_LDT_SYSCALL``), ESPfix and EFI configured in
    and the KASAN pair when the layout has it; the list ends with ``-1``."""
    m = macros
    out = [
        (0, "User Space", 0),
        (1 << 63, "Kernel Space", 0),
        (m["LDT_BASE_ADDR"], "LDT remap", 0),
        (m["PAGE_OFFSET"], "Low Kernel Mapping", 0),
        (m["VMALLOC_START"], "vmalloc() Area", 0),
        (m["VMEMMAP_START"], "Vmemmap", 0),
    ]
    if "KASAN_SHADOW_START" in m:
        out += [
            (m["KASAN_SHADOW_START"], "KASAN shadow", 0),
            (m["KASAN_SHADOW_END"], "KASAN shadow end", 0),
        ]
    out += [
        (m["CPU_ENTRY_AREA_BASE"], "CPU entry Area", 0),
        (m["ESPFIX_BASE_ADDR"], "ESPfix Area", 16),
        (m["EFI_VA_END"], "EFI Runtime Services", 0),
        (m["__START_KERNEL_map"], "High Kernel Mapping", 0),
        (m["MODULES_VADDR"], "Modules", 0),
        (m["MODULES_END"], "End Modules", 0),
        (m["FIXADDR_START"], "Fixmap Area", 0),
        (_M64, "", 0),
    ]
    return out


def _effective(prot1: int, prot2: int) -> int:
    return (prot1 & prot2 & _USER_RW) | ((prot1 | prot2) & _NX)


def _notes(m: Machine) -> Iterator[tuple[int, int, int, int]]:
    """``(current_address, prot, eff, level)`` for every ``note_page()`` of the walk."""
    pt = m.pgtables
    vshift = m.macros["__VIRTUAL_MASK_SHIFT"]
    shift = 64 - (vshift + 1)
    used = [lv.name for lv in pt.levels]  # pgd, [p4d,] pud, pmd, pte
    guard = (m.macros["GUARD_HOLE_BASE_ADDR"], m.macros["GUARD_HOLE_END_ADDR"])

    def normalize(u: int) -> int:
        u = (u << shift) & _M64
        return (u >> shift) | (_M64 ^ (_M64 >> shift) if u >> 63 else 0)

    def walk(depth: int, pfn: int, base: int, eff_in: int) -> Iterator[tuple[int, int, int, int]]:
        level = pt.levels[depth]
        number = LEVEL_NAMES.index(level.name) + 1
        arr = pt.content[pfn]
        for i in range(level.ptrs):
            raw = int(arr[i])
            addr = base + i * level.entry_size
            current = normalize(addr)
            hyper = depth == 0 and guard[0] <= current < guard[1]
            if raw == 0 or hyper:
                yield current, 0, 0, number
                continue
            prot = raw & ~pfn_mask(raw, level.name) & _M64
            eff = prot if depth == 0 else _effective(eff_in, prot)
            leaf = depth == len(used) - 1
            if leaf or raw & _PSE or not raw & _PRESENT:
                yield current, prot, eff, number
            else:
                yield from walk(depth + 1, pt.next_table(raw), addr, eff)

    yield from walk(0, pt.pgd_pfn, 0, 0)
    yield 0, 0, 0, 0  # normalize_addr(PTRS_PER_PGD * PGD_LEVEL_MULT) wraps to 0: 2**64 here


def ptdump_walk(
    m: Machine, *, start: int | None = None, end: int | None = None
) -> Iterator[PtdumpRecord]:
    """The dump as records (:mod:`mmkit.mm.ptdump_records`), what mmkit's
    :func:`~mmkit.mm.ptdump.ptdump_walk` returns for this machine.

    The walk covers ``[start, end)``, by default the whole address space as the kernel walks
    it (the last range ends at ``2**64``, printed ``0x0000000000000000``); with ``start``
    the marker list starts at the last marker at or below it. A range's ``level`` is the
    name as printed (``"pmd"``), ``attrs`` the ``printk_prot()`` columns (empty when not
    present), ``prot`` the flags merged on, ``level_no`` 1 (pgd) to 5 (pte).
    ``ESPfix Area``'s 16-line cap is not applied (the model maps nothing there).
    """
    lo = 0 if start is None else start
    hi = _TOP if end is None else end
    if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo < hi <= _TOP):
        raise InvalidArgument(f"ptdump_walk: range [{lo!r}, {hi!r}) is not inside [0, 2**64)")
    markers = address_markers(m.macros)
    mi = max(i for i, (address, _, _) in enumerate(markers) if address <= lo)
    return _records(m, markers, mi, lo, hi)


def _records(
    m: Machine, markers: list[tuple[int, str, int]], mi: int, lo: int, hi: int
) -> Iterator[PtdumpRecord]:
    state: dict[str, int] | None = None
    for current, prot, eff, level in _notes(m):
        final = level == 0
        if final:
            current = hi
        elif current < lo:
            continue
        elif current >= hi:
            current, prot, eff, level, final = hi, 0, 0, 0, True
        if state is None:
            state = {"prot": prot, "eff": eff, "level": level, "start": current}
            yield PtdumpMarker(markers[mi][1], markers[mi][0])
            if final:
                return
            continue
        crossed = current >= markers[mi + 1][0]
        same = prot == state["prot"] and eff == state["eff"] and level == state["level"]
        if not (same and not crossed and not final):
            name = LEVEL_NAMES[state["level"] - 1]
            yield PtdumpRange(
                state["start"],
                current,
                name,
                state["prot"],
                ptdump_columns(state["prot"], name),
                current - state["start"],
                state["level"],
            )
            if crossed and not final:
                mi += 1
                yield PtdumpMarker(markers[mi][1], markers[mi][0])
            state.update(prot=prot, eff=eff, level=level, start=current)
        if final:
            return


def format_records(records: Iterable[PtdumpRecord]) -> str:
    """Records as x86's debugfs text: ``---[ name ]---`` lines and ``note_page()`` lines."""
    lines = []
    for rec in records:
        if isinstance(rec, PtdumpMarker):
            lines.append(f"---[ {rec.name} ]---")
        else:
            lines.append(
                f"0x{rec.start:016x}-0x{rec.end & _M64:016x}   {ptdump_size(rec.size)} "
                + ("".join(rec.attrs) or " " * 30)
                + rec.level
            )
    return "\n".join(lines) + "\n"


def ptdump(m: Machine) -> str:
    """``cat /sys/kernel/debug/page_tables/kernel`` on the machine (module docstring)."""
    return format_records(ptdump_walk(m))
