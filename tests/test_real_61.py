"""A real arm64 Linux 6.1 kernel's ``kernel_page_tables`` (QEMU virt, before and after a
1 GiB virtio-mem hot-add and after its removal; how they were made is in the README beside
them) against the parser, the v6.1 formatter and a v6.1 machine.

Only lines the kernel source fixes are compared with the engine's (6.1 ``map_mem()`` and
``pgprot_mhp()``: ``pgprot_tagged(PAGE_KERNEL)``; ``fixmap_remap_fdt()``:
``create_mapping_noalloc(round_down(dt_phys, SWAPPER_BLOCK_SIZE), dt_virt_base,
SWAPPER_BLOCK_SIZE, prot)``; ``vmlinux.lds.S``: ``_stext`` at ``_text`` + SEGMENT_ALIGN),
never the build's own ones (image size, vmalloc contents).
"""

from __future__ import annotations

import pathlib

import pytest

from mmkit.machine import Machine
from mmkit.mm.ptdump import PtdumpRange, format_ptdump, parse_ptdump, ptdump

REAL = pathlib.Path(__file__).parent / "real-6.1"  # a copy of the captures, README included
CAPTURES = sorted(REAL.glob("kernel_page_tables*.txt"))
CONFIG = {"": "arm64-4k-48", "64k-48-": "arm64-64k-48", "16k-47-": "arm64-16k-47"}
GIB = 1 << 30
HOTPLUG = 0xC000_0000  # the virtio-mem region of the captures


def capture(config: str, state: str) -> str:
    prefix = next(k for k, v in CONFIG.items() if v == config)
    return (REAL / f"kernel_page_tables-{prefix}{state}.txt").read_text()


def ranges(text: str) -> list[PtdumpRange]:
    return [r for r in parse_ptdump(text) if isinstance(r, PtdumpRange)]


def covering(text: str, va: int) -> PtdumpRange:
    return next(r for r in ranges(text) if r.start <= va < (r.end or 1 << 64))


def machine(config: str) -> Machine:
    # the README's build: RODATA_FULL_DEFAULT_ENABLED, UNMAP_KERNEL_AT_EL0 built but KPTI
    # not in use under -cpu max (no nG), RELOCATABLE, no GHES or SDEI
    return Machine(config, kernel="v6.1", rodata_full=True, unmap_kernel_at_el0=False, ghes=False)


def test_there_are_nine_captures():
    assert len(CAPTURES) == 9


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_a_real_dump_round_trips_byte_for_byte(path):
    text = path.read_text()
    assert format_ptdump(parse_ptdump(text), "v6.1") == text


@pytest.mark.parametrize("config", sorted(CONFIG.values()))
def test_the_linear_map_is_tagged_up_to_stext_then_the_kernel_alias(config):
    real = capture(config, "boot").splitlines()
    mine = ptdump(machine(config)).splitlines()
    assert mine[:2] == real[:2] == ["---[ Linear Mapping start ]---", real[1]]
    assert "MEM/NORMAL-TAGGED" in real[1]
    # the kernel alias [_stext, __init_begin): its start, not its (build-specific) end
    alias = parse_ptdump(real[2])[0]
    ours = parse_ptdump(mine[2])[0]
    assert ours.start == alias.start and ours.tokens == alias.tokens
    assert "MEM/NORMAL" in ours.tokens and "MEM/NORMAL-TAGGED" not in ours.tokens


@pytest.mark.parametrize("config", sorted(CONFIG.values()))
def test_hot_added_memory_is_mapped_tagged(config):
    m = machine(config)
    m.hot_add(HOTPLUG, GIB)
    va = m.lm_va(HOTPLUG)
    real = covering(capture(config, "after-hot-add"), va)
    ours = covering(ptdump(m), va)
    assert ours.tokens == real.tokens and "MEM/NORMAL-TAGGED" in ours.tokens


@pytest.mark.parametrize("config", sorted(CONFIG.values()))
def test_the_fdt_window_is_one_swapper_block(config):
    m = machine(config)
    fdt = m.macros["FIXADDR_TOP"] - (4 << 20)  # __fix_to_virt(FIX_FDT)
    line = next(x for x in capture(config, "boot").splitlines() if x.startswith(f"{fdt:#018x}-"))
    assert line in ptdump(m).splitlines()
    if config == "arm64-4k-48":
        assert " 2M PMD " in line and " BLK " in line


@pytest.mark.parametrize("config", sorted(CONFIG.values()))
def test_the_image_is_mapped_from_stext(config):
    m = machine(config)
    text = next(r for r in ranges(capture(config, "boot")) if "x" in r.tokens)
    ours = next(r for r in ranges(ptdump(m)) if "x" in r.tokens)
    assert ours.start == text.start == m.macros["KIMAGE_VADDR"] + 0x10000
    assert ours.tokens == text.tokens


def _fixmap(text: str) -> list[str]:
    lines = text.splitlines()
    a = lines.index("---[ Fixmap start ]---")
    return lines[a : lines.index("---[ Fixmap end ]---") + 1]


@pytest.mark.parametrize("config", sorted(CONFIG.values()))
def test_the_fixmap_is_the_real_one_line_for_line(config):
    """The slots of 6.1 ``enum fixed_addresses`` for this build (FDT window, EARLYCON,
    TEXT_POKE0, the trampoline's TEXT4..TEXT1), ``map_entry_trampoline()``'s pages (text
    global ROX, data RO) and ``fixmap_remap_fdt()``'s window: every line of the section."""
    assert _fixmap(ptdump(machine(config))) == _fixmap(capture(config, "boot"))
