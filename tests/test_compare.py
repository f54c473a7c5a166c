"""Comparing policies on one scenario: the numbers the lesson shows, from independent facts."""

from __future__ import annotations

import pytest

from mmkit.mm.compare import compare_policies


def test_v7_issues_ptrs_per_pte_tlbis_per_block_and_v57_one():
    # 4K/39, one 1 GiB block far from boot memory: 8 vmemmap PMD blocks (16 MiB memmap) and
    # a 1 GiB linear-map block. V7: flush_tlb_kernel_range over each 2 MiB block = 512 TLBIs,
    # and a full flush for the 1 GiB block; v5.7: one TLBI each.
    rows = {
        r.policy: r
        for r in compare_policies("arm64-4k-39", blocks=[0x20_4000_0000], policies=["v7", "v5.7"])
    }
    assert rows["v7"].tlbi == {
        "vaale1is": 8 * 512,
        "vaae1is": rows["v7"].tlbi["vaae1is"],
        "vmalle1is": 1,
    }
    assert rows["v5.7"].tlbi["vaale1is"] == 9 and rows["v5.7"].tlbi["vmalle1is"] == 0


@pytest.mark.parametrize(("config", "v7_keeps"), [("arm64-4k-48", True), ("arm64-4k-39", False)])
def test_v6_never_frees_vmemmap_tables_and_v7_only_with_overlap(config, v7_keeps):
    block = {"arm64-4k-48": 0x4000_0000_0000, "arm64-4k-39": 0x20_4000_0000}[config]
    rows = {r.policy: r for r in compare_policies(config, blocks=[block])}
    assert rows["v6"].tables_left > 0
    assert set(rows["v6"].left_by_level_region) <= {"pud/vmemmap", "pmd/vmemmap"}
    assert (rows["v7"].tables_left == rows["v6"].tables_left) == v7_keeps
    for name in ("naive", "v3", "v5.7"):
        assert rows[name].tables_left == 0
        assert rows[name].tables_freed == rows[name].tables_allocated
    assert all(not r.events for r in rows.values())
    assert rows["v6"].bytes_left == rows["v6"].tables_left * 4096


def test_v3_tlbis_are_its_table_frees_and_one_flush_per_pte_loop():
    """V3 4/4 / V5 3/3: no TLBI for a block (4K/39: 8 vmemmap PMD blocks and a 1 GiB linear
    block), one ``__flush_tlb_kernel_pgtable`` per freed table, and on 64K/42 (memmap in base
    pages: 1 MiB = 16 pages per section) one ``flush_tlb_kernel_range`` over the 16 pages."""
    rows = {
        (r.config, r.policy): r
        for config in ("arm64-4k-39", "arm64-64k-42")
        for r in compare_policies(config, blocks=[0x20_4000_0000], policies=["v3", "v5.7"])
    }
    v3 = rows[("arm64-4k-39", "v3")]
    assert v3.tlbi == {"vaale1is": 0, "vaae1is": v3.tables_freed, "vmalle1is": 0}
    assert v3.tables_freed >= 1
    v3 = rows[("arm64-64k-42", "v3")]
    assert v3.tlbi == {"vaale1is": 16, "vaae1is": v3.tables_freed, "vmalle1is": 0}
    # v5.7: one TLBI per page and per block (16 + two 512 MiB linear-map blocks)
    assert rows[("arm64-64k-42", "v5.7")].tlbi["vaale1is"] == 16 + 2
