"""pandas views of the engine's records, imported only when used.

The engine hands out records (configuration rows, regions, steps, kernel events, table
pages, ptdump ranges, policy outcomes); these functions only arrange them for reading. Every
address, pfn, descriptor and mask is a ``"0x..."`` string that ``int(x, 16)`` reads back
(the layout tables print memory.rst's 16 hex digits, without ``0x``); ``raw=True`` gives the
ints instead, for computing.

>>> from mmkit.machine import Machine
>>> m = Machine("arm64-4k-48")
>>> shown, raw = table_pages_frame(m), table_pages_frame(m, raw=True)
>>> shown["va start"].iloc[0], int(shown["va start"].iloc[0], 16) == raw["va start"].iloc[0]
('0xffff000000000000', True)

* :func:`configs_frame`, :func:`layout_frame`, :func:`layout_html`: the configurations and
  their memory.rst layouts (:mod:`mmkit.tables.configs`);
* :func:`steps_frame`, :func:`events_frame`: what an operation did and the kernel log
  (:mod:`mmkit.tables.steps`);
* :func:`table_pages_frame`, :func:`ptdump_frame`: the page tables now
  (:mod:`mmkit.tables.pages`);
* :func:`comparison_frame`: policies side by side (:mod:`mmkit.tables.compare`).
"""

from __future__ import annotations

from mmkit.tables.compare import comparison_frame
from mmkit.tables.configs import CONFIG_COLUMNS, configs_frame, layout_frame, layout_html
from mmkit.tables.pages import PTDUMP_COLUMNS, TABLE_PAGE_COLUMNS, ptdump_frame, table_pages_frame
from mmkit.tables.steps import EVENT_COLUMNS, STEP_COLUMNS, events_frame, steps_frame

__all__ = [
    "CONFIG_COLUMNS",
    "EVENT_COLUMNS",
    "PTDUMP_COLUMNS",
    "STEP_COLUMNS",
    "TABLE_PAGE_COLUMNS",
    "comparison_frame",
    "configs_frame",
    "events_frame",
    "layout_frame",
    "layout_html",
    "ptdump_frame",
    "steps_frame",
    "table_pages_frame",
]
