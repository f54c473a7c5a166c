"""The descriptor format's parameters, and where a descriptor keeps its output address.

A stage-1 descriptor's layout depends on the granule (``page_shift`` 12, 14 or 16), the PA
size (``pa_bits`` 48, or 52 with 64K pages: Kconfig ``ARM64_PA_BITS_52`` in Linux v5.4) and the
lookup level (0..3; 64K has no level 0). This module checks those parameters, says which levels
may hold blocks (:func:`armv8_block_levels`), models the address field of v5.4
``arch/arm64/include/asm/pgtable-hwdef.h`` (``PTE_ADDR_MASK``) and
``arch/arm64/include/asm/pgtable.h`` (``__phys_to_pte_val()``/``__pte_to_phys()``, which keep
PA[51:48] in descriptor bits [15:12]), and gives a table's entry index (:func:`index`).

Bad input raises :class:`mmkit.errors.InvalidArgument` naming the culprit, what was expected,
what was found and the fix; the private ``_bad``/``_check_*`` helpers here build those errors
for every ``pte_*`` module. Import the public names from :mod:`mmkit.arch.pte`.
"""

from __future__ import annotations

from collections.abc import Set

from mmkit.errors import InvalidArgument

__all__ = ["addr_mask", "armv8_block_levels", "index", "phys_to_pte_val", "pte_to_phys"]

_PAGE_SHIFTS = (12, 14, 16)
_PA_BITS = (48, 52)
_U64 = 1 << 64

# --------------------------------------------------------------------------------------------
# Validation helpers.
# --------------------------------------------------------------------------------------------


def _bad(culprit: str, expected: str, found: object, fix: str) -> InvalidArgument:
    # Addresses and bit patterns read best in hex, small counts (levels, indexes) in decimal.
    if isinstance(found, str):
        shown = found
    elif type(found) is int and found >= 10:
        shown = hex(found)
    else:
        shown = repr(found)
    return InvalidArgument(f"{culprit}: expected {expected}, found {shown}; fix: {fix}")


def _check_u64(name: str, value: object) -> int:
    if type(value) is not int or not 0 <= value < _U64:
        raise _bad(name, "an int in [0, 2**64)", value, f"pass {name} as a 64-bit unsigned int")
    return value


def _check_format(page_shift: object, pa_bits: object) -> None:
    if page_shift not in _PAGE_SHIFTS or type(page_shift) is not int:
        raise InvalidArgument(
            f"page_shift: expected 12 (4K), 14 (16K) or 16 (64K), found {page_shift!r}; "
            "fix: pass the granule's PAGE_SHIFT",
            choices=[str(s) for s in _PAGE_SHIFTS],
        )
    if pa_bits not in _PA_BITS or type(pa_bits) is not int:
        raise InvalidArgument(
            f"pa_bits: expected 48 or 52 (CONFIG_ARM64_PA_BITS), found {pa_bits!r}; "
            "fix: pass 48, or 52 with 64K pages",
            choices=[str(b) for b in _PA_BITS],
        )
    if pa_bits == 52 and page_shift != 16:
        raise _bad(
            "pa_bits",
            "52 only with 64K pages (ARMv8.2-LPA; Kconfig ARM64_PA_BITS_52 depends on "
            "ARM64_64K_PAGES)",
            f"52 with page_shift {page_shift}",
            "use page_shift=16 or pa_bits=48",
        )


def _check_level(level: object, page_shift: int) -> int:
    if type(level) is not int or level not in (0, 1, 2, 3):
        raise InvalidArgument(
            f"level: expected a hardware level 0..3, found {level!r}; "
            "fix: pass the lookup level (0 = top of a 4-level 4K walk, 3 = pte)",
            choices=["0", "1", "2", "3"],
        )
    if level == 0 and page_shift == 16:
        # A 64K walk resolves at most 13 bits per level; even 52-bit VAs fit in levels 1..3,
        # so the architecture has no level-0 lookup for this granule.
        raise _bad(
            "level",
            "1..3 with the 64K granule (it has no level 0 lookup)",
            level,
            "start the walk at level 1",
        )
    return level


def _check_block_levels(block_levels: object) -> frozenset[int]:
    if not isinstance(block_levels, Set) or not all(
        type(lv) is int and lv in (0, 1, 2) for lv in block_levels
    ):
        raise _bad(
            "block_levels",
            "a set of levels from {0, 1, 2} (level 3 never holds blocks)",
            block_levels,
            "pass e.g. armv8_block_levels(page_shift, pa_bits)",
        )
    return frozenset(block_levels)


def _level_shift(level: int, page_shift: int) -> int:
    # ARM64_HW_PGTABLE_LEVEL_SHIFT(n): each level resolves (page_shift - 3) bits (a table is
    # one page of 8-byte entries) on top of the page offset.
    return (page_shift - 3) * (4 - level) + 3


def armv8_block_levels(page_shift: int, pa_bits: int = 48) -> frozenset[int]:
    """Levels at which ARMv8.0-8.6 allows block descriptors for this granule.

    4K: levels 1 (1 GiB) and 2 (2 MiB); 16K: level 2 (32 MiB) only; 64K: level 2 (512 MiB),
    plus level 1 (4 TiB) when 52-bit PAs are in use (ARMv8.2-LPA). FEAT_LPA2 (ARMv8.7) block
    levels are not modelled. This is what :func:`encode_block` checks when given no set.

    >>> sorted(armv8_block_levels(12)), sorted(armv8_block_levels(16, 52))
    ([1, 2], [1, 2])
    """
    _check_format(page_shift, pa_bits)
    if page_shift == 12:
        return frozenset({1, 2})
    if page_shift == 16 and pa_bits == 52:
        return frozenset({1, 2})
    return frozenset({2})


# --------------------------------------------------------------------------------------------
# Output-address field.
# --------------------------------------------------------------------------------------------


def addr_mask(page_shift: int, pa_bits: int = 48) -> int:
    """``PTE_ADDR_MASK`` (v5.4 pgtable-hwdef.h): descriptor bits that hold the address.

    Bits [47:page_shift] (``PTE_ADDR_LOW``), plus bits [15:12] (``PTE_ADDR_HIGH``, PA[51:48])
    when 52-bit PAs are configured.

    >>> hex(addr_mask(12)), hex(addr_mask(16)), hex(addr_mask(16, 52))
    ('0xfffffffff000', '0xffffffff0000', '0xfffffffff000')
    """
    _check_format(page_shift, pa_bits)
    low = ((1 << (48 - page_shift)) - 1) << page_shift
    return low | (0xF << 12) if pa_bits == 52 else low


def phys_to_pte_val(pa: int, *, page_shift: int, pa_bits: int = 48) -> int:
    """``__phys_to_pte_val()`` (v5.4 pgtable.h): place page-aligned ``pa`` in a descriptor.

    With 52-bit PAs (64K pages only) PA[51:48] move down to descriptor bits [15:12], which are
    free because a 64K-aligned address has zeros there.

    >>> hex(phys_to_pte_val(0x000F_0000_0001_0000, page_shift=16, pa_bits=52))
    '0x1f000'
    """
    _check_format(page_shift, pa_bits)
    pa = _check_u64("pa", pa)
    _check_pa(pa, 1 << page_shift, "page", page_shift, pa_bits)
    if pa_bits == 52:
        return (pa | (pa >> 36)) & addr_mask(page_shift, pa_bits)
    return pa


def pte_to_phys(raw: int, *, page_shift: int, pa_bits: int = 48) -> int:
    """``__pte_to_phys()`` (v5.4 pgtable.h): the page-aligned address held in ``raw``.

    >>> hex(pte_to_phys(0x1F703, page_shift=16, pa_bits=52))
    '0xf000000010000'
    """
    _check_format(page_shift, pa_bits)
    raw = _check_u64("raw", raw)
    low = raw & addr_mask(page_shift, 48)
    if pa_bits == 52:
        return low | ((raw & (0xF << 12)) << 36)
    return low


def _check_pa(
    pa: int, align: int, what: str, page_shift: int, pa_bits: int, culprit: str = "pa"
) -> None:
    if pa >= 1 << pa_bits:
        wider = "" if pa_bits == 52 else ", or pa_bits=52 with 64K pages"
        raise _bad(
            culprit,
            f"a physical address below 2**{pa_bits} (pa_bits={pa_bits})",
            pa,
            f"use a smaller address{wider}",
        )
    if pa % align:
        raise _bad(
            culprit,
            f"a {what} address aligned to {align:#x} bytes",
            pa,
            f"round down to {pa & ~(align - 1):#x}",
        )


# --------------------------------------------------------------------------------------------
# Index helper.
# --------------------------------------------------------------------------------------------


def index(va: int, shift: int, ptrs: int) -> int:
    """Entry index of ``va`` in a table: ``(va >> shift) & (ptrs - 1)``.

    The shape of v5.4 ``pgd_index()``, ``pud_index()``, ``pmd_index()`` and ``pte_index()``;
    ``shift`` is the level's ``*_SHIFT`` and ``ptrs`` its ``PTRS_PER_*`` (a power of two).

    >>> index(0xFFFF_0000_4060_1000, 21, 512)  # PMD_SHIFT, PTRS_PER_PMD on 4K
    3
    """
    va = _check_u64("va", va)
    if type(shift) is not int or not 0 <= shift < 64:
        raise _bad("shift", "a bit position 0..63", shift, "pass the level's *_SHIFT")
    if type(ptrs) is not int or ptrs < 1 or ptrs & (ptrs - 1):
        raise _bad("ptrs", "a power of two (PTRS_PER_*)", ptrs, "pass the table's entry count")
    return (va >> shift) & (ptrs - 1)
