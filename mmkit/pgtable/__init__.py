"""Kernel page tables: table pages of real arm64 descriptors, mapping, walking, teardown."""

from mmkit.pgtable.tables import PageTables, TableInfo, TablePageRecord

__all__ = ["PageTables", "TableInfo", "TablePageRecord"]
