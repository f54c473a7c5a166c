"""mmkit: learn how Linux arm64 gives memory back, by simulating it faithfully.

The engine (``mmkit.arch``, and the page-table and hotplug layers built on it) is pure Python
and imports no plotly, pandas or ipywidgets; the views (``mmkit.viz``, ``mmkit.widgets``,
``mmkit.tables``) import them when they are used.

>>> import mmkit
>>> mmkit.arch.get("arm64-4k-48").macros()["PGDIR_SHIFT"]
39
"""

from __future__ import annotations

from mmkit import arch, errors
from mmkit.errors import (
    Busy,
    Exists,
    InvalidArgument,
    MmkitError,
    NoMemory,
    NotFound,
    PluginError,
    UnknownName,
)

__version__ = "0.1.0"

__all__ = [
    "Busy",
    "Exists",
    "InvalidArgument",
    "MmkitError",
    "NoMemory",
    "NotFound",
    "PluginError",
    "UnknownName",
    "__version__",
    "arch",
    "errors",
]
