"""The entry-format hook: the arm64 default behaves as the engine's own codec always did."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit import arch
from mmkit.arch import pte as hw
from mmkit.arch.pte_api import Arm64PteFormat, PteFormat, pte_format_of

_CONFIGS = [("arm64-4k-48", {}), ("arm64-64k-52", {"pa_bits": 52}), ("arm64-16k-47", {})]


@pytest.mark.parametrize(("name", "options"), _CONFIGS)
def test_default_format_is_arm64s(name, options):
    d = arch.get(name, **options)
    fmt = pte_format_of(d)
    assert isinstance(fmt, Arm64PteFormat) and isinstance(fmt, PteFormat)
    assert fmt.addr_mask == hw.addr_mask(d.page_shift, d.pa_bits)
    assert fmt.cont_bit == hw.PTE_CONT


@pytest.mark.parametrize(("name", "options"), _CONFIGS)
def test_address_round_trip_and_classification(name, options):
    d = arch.get(name, **options)
    fmt = pte_format_of(d)

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(
        page=st.integers(0, (1 << (d.pa_bits - d.page_shift)) - 1), raw=st.integers(0, 2**64 - 1)
    )
    def check(page, raw):
        pa = page << d.page_shift
        assert fmt.entry_to_pa(fmt.pa_to_entry(pa)) == pa
        table = fmt.table_entry(pa)
        assert fmt.is_table(table, False) and not fmt.is_table(table, True)
        assert fmt.entry_to_pa(table) == pa and not fmt.is_block(table)
        block = fmt.pa_to_entry(pa) | fmt.block_prot(fmt.kernel_prot("PAGE_KERNEL"))
        assert fmt.is_block(block) and not fmt.is_table(block, False)
        mask, value = fmt.table_match
        assert fmt.is_table(raw, False) == (raw & mask == value)
        assert fmt.is_page(raw) == (raw & 3 == 3)

    check()


def test_a_descriptors_own_format_wins():
    class Marker:
        pte_format = object()

    assert pte_format_of(Marker()) is Marker.pte_format
