"""KPTI is two things: ``CONFIG_UNMAP_KERNEL_AT_EL0`` built (the trampoline's fixmap slots
exist and ``map_entry_trampoline()`` maps them) and the boot-time decision to unmap the
kernel at EL0 (``arm64_kernel_unmapped_at_el0()``: nG on kernel mappings through
``PTE_MAYBE_NG`` / ``PMD_MAYBE_NG``; v5.4 and v6.1 ``pgtable-prot.h``, ``mmu.c``)."""

from __future__ import annotations

import pytest

from mmkit.arch import pte as hw
from mmkit.cli import main
from mmkit.errors import InvalidArgument
from mmkit.machine import Machine
from mmkit.mm.ptdump import PtdumpRange, ptdump_walk
from mmkit.pgtable.walk import translate


def _mapped(m):
    return [r for r in ptdump_walk(m) if isinstance(r, PtdumpRange) and r.mapped]


def _tramp_text(m):
    """The global executable fixmap page(s): the entry trampoline."""
    lo, hi = m.macros["FIXADDR_START"], m.macros["FIXADDR_TOP"]
    return [r for r in _mapped(m) if lo <= r.start < hi and "x" in r.tokens]


@pytest.mark.parametrize("kernel", ["v5.4", "v6.1"])
def test_built_but_not_in_use_maps_the_trampoline_and_no_ng(kernel):
    m = Machine("arm64-4k-48", kernel=kernel, unmap_kernel_at_el0=False)
    assert m.desc.kpti and not m.kpti_enabled and not m.ng
    assert not any("NG" in r.tokens for r in _mapped(m))
    [text] = _tramp_text(m)
    assert text.size == (12 << 10 if kernel == "v6.1" else 4 << 10)


@pytest.mark.parametrize("kernel", ["v5.4", "v6.1"])
def test_in_use_every_kernel_mapping_is_ng_but_the_trampoline(kernel):
    m = Machine("arm64-4k-48", kernel=kernel)
    assert m.kpti_enabled and m.ng
    [text] = _tramp_text(m)
    assert "NG" not in text.tokens  # map_entry_trampoline(): pgprot_val(prot) &= ~PTE_NG
    others = [r for r in _mapped(m) if r is not text and r.start != text.start]
    assert others and all("NG" in r.tokens for r in others)


def test_vmemmap_blocks_are_ng_when_kpti_is_in_use():
    """4K vmemmap: PMD blocks of PROT_SECT_NORMAL, whose PROT_SECT_DEFAULT has PMD_MAYBE_NG."""
    m = Machine("arm64-4k-48")
    w = translate(m, m.vmemmap_va(m.memstart >> m.desc.page_shift))
    assert w.leaf_level == "pmd" and w.leaf_raw & hw.PTE_NG
    off = Machine("arm64-4k-48", unmap_kernel_at_el0=False)
    w = translate(off, off.vmemmap_va(off.memstart >> off.desc.page_shift))
    assert not w.leaf_raw & hw.PTE_NG


def test_not_built_means_no_trampoline_and_no_kpti():
    m = Machine("arm64-4k-48", kpti=False)
    assert not m.kpti_enabled and not _tramp_text(m)
    with pytest.raises(InvalidArgument, match="UNMAP_KERNEL_AT_EL0"):
        Machine("arm64-4k-48", kpti=False, unmap_kernel_at_el0=True)


def test_cli_layout_takes_relocatable(capsys):
    sizes = {}
    for flag in ("--relocatable", "--no-relocatable"):
        assert main(["layout", "arm64-4k-48", "--kernel", "v6.1", flag]) == 0
        line = next(x for x in capsys.readouterr().out.splitlines() if "fixed mappings" in x)
        sizes[flag] = line.split()[2]
    # v6.1 fixmap.h: FIX_ENTRY_TRAMP_TEXT4, one extra slot for the data page, if RELOCATABLE
    assert sizes == {"--relocatable": "4132KB", "--no-relocatable": "4128KB"}
