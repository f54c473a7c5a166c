"""The kernel's protection values: the ``PROT_*`` and ``PAGE_KERNEL*`` of Linux v5.4.

:func:`kernel_prot` builds each combination of v5.4
``arch/arm64/include/asm/pgtable-prot.h`` from the descriptor bits of
:mod:`mmkit.arch.pte_bits`. Two things the kernel decides outside that header are parameters:
``PTE_MAYBE_NG``/``PMD_MAYBE_NG`` (non-global mappings under KPTI, a boot-time choice) and
``mk_pmd_sect_prot()`` (v5.4 ``arch/arm64/include/asm/pgtable.h``), which turns a page prot
into a block prot. Import from :mod:`mmkit.arch.pte`.
"""

from __future__ import annotations

from mmkit.arch.pte_bits import (
    MT_NORMAL,
    MT_NORMAL_NC,
    MT_NORMAL_WT,
    PMD_SECT_AF,
    PMD_SECT_PXN,
    PMD_SECT_S,
    PMD_SECT_UXN,
    PMD_TABLE_BIT,
    PMD_TYPE_SECT,
    PTE_AF,
    PTE_ATTRINDX,
    PTE_CONT,
    PTE_NG,
    PTE_PXN,
    PTE_RDONLY,
    PTE_SHARED,
    PTE_TYPE_PAGE,
    PTE_UXN,
    PTE_WRITE,
    MT_DEVICE_nGnRE,
    MT_DEVICE_nGnRnE,
)
from mmkit.errors import UnknownName

__all__ = ["KERNEL_PROT_NAMES", "kernel_prot"]


def _prot_values(ng: bool) -> dict[str, int]:
    # PTE_MAYBE_NG / PMD_MAYBE_NG: nG is added when arm64_kernel_use_ng_mappings() says so
    # (KPTI), which is a boot-time decision; the caller passes it as ``ng``.
    maybe_ng = PTE_NG if ng else 0
    prot_default = PTE_TYPE_PAGE | PTE_AF | PTE_SHARED | maybe_ng
    prot_sect_default = PMD_TYPE_SECT | PMD_SECT_AF | PMD_SECT_S | maybe_ng
    xn_write = PTE_PXN | PTE_UXN | PTE_WRITE
    sect_xn = PMD_SECT_PXN | PMD_SECT_UXN
    prot_normal = prot_default | xn_write | PTE_ATTRINDX(MT_NORMAL)
    return {
        "PROT_DEFAULT": prot_default,
        "PROT_SECT_DEFAULT": prot_sect_default,
        "PROT_DEVICE_nGnRnE": prot_default | xn_write | PTE_ATTRINDX(MT_DEVICE_nGnRnE),
        "PROT_DEVICE_nGnRE": prot_default | xn_write | PTE_ATTRINDX(MT_DEVICE_nGnRE),
        "PROT_NORMAL_NC": prot_default | xn_write | PTE_ATTRINDX(MT_NORMAL_NC),
        "PROT_NORMAL_WT": prot_default | xn_write | PTE_ATTRINDX(MT_NORMAL_WT),
        "PROT_NORMAL": prot_normal,
        "PROT_SECT_DEVICE_nGnRE": prot_sect_default | sect_xn | PTE_ATTRINDX(MT_DEVICE_nGnRE),
        "PROT_SECT_NORMAL": prot_sect_default | sect_xn | PTE_ATTRINDX(MT_NORMAL),
        "PROT_SECT_NORMAL_EXEC": prot_sect_default | PMD_SECT_UXN | PTE_ATTRINDX(MT_NORMAL),
        "PAGE_KERNEL": prot_normal,
        "PAGE_KERNEL_RO": (prot_normal & ~PTE_WRITE) | PTE_RDONLY,
        "PAGE_KERNEL_ROX": (prot_normal & ~(PTE_WRITE | PTE_PXN)) | PTE_RDONLY,
        "PAGE_KERNEL_EXEC": prot_normal & ~PTE_PXN,
        "PAGE_KERNEL_EXEC_CONT": (prot_normal & ~PTE_PXN) | PTE_CONT,
    }


#: Every name :func:`kernel_prot` knows, in pgtable-prot.h order.
KERNEL_PROT_NAMES: tuple[str, ...] = tuple(_prot_values(False))


def kernel_prot(name: str, *, ng: bool = False, block: bool = False) -> int:
    """The v5.4 ``pgtable-prot.h`` value called ``name`` (``PAGE_KERNEL``, ``PROT_SECT_NORMAL``...).

    ``ng`` models ``PTE_MAYBE_NG``/``PMD_MAYBE_NG`` (set when the kernel uses non-global
    mappings, i.e. KPTI). ``block=True`` applies ``mk_pmd_sect_prot()`` (v5.4 pgtable.h):
    clear the table bit and set the section type, turning a page prot into one usable for a
    block descriptor; ``PROT_SECT_*`` values are already block prots and are unchanged.

    >>> hex(kernel_prot("PAGE_KERNEL"))
    '0x68000000000713'
    >>> hex(kernel_prot("PAGE_KERNEL", ng=True, block=True))
    '0x68000000000f11'
    """
    values = _prot_values(bool(ng))
    if name not in values:
        raise UnknownName(
            f"kernel_prot: name: expected a v5.4 pgtable-prot.h protection name, found {name!r}; "
            "fix: use one of KERNEL_PROT_NAMES",
            choices=KERNEL_PROT_NAMES,
        )
    value = values[name]
    if block:
        value = (value & ~PMD_TABLE_BIT) | PMD_TYPE_SECT
    return value
