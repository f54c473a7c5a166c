"""The registry's records: :class:`PluginEntry`, one discovered entry point, and
:class:`PluginReport`, what became of it (one of :data:`STATUSES`, why, and the fix).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Final

from mmkit.plugins._helpers import _normalize

#: Every :attr:`PluginReport.status`, from best to worst-but-harmless.
STATUSES: Final = (
    "ok",
    "disabled",
    "import-error",
    "load-error",
    "invalid",
    "nonconformant",
    "api-mismatch",
    "duplicate",
)

_BUILTIN_DISTRIBUTION = "mmkit"
_RUNTIME_DISTRIBUTION = "<runtime>"
_UNKNOWN_DISTRIBUTION = "<unknown>"


@dataclass(frozen=True)
class PluginEntry:
    """One discovered entry point, not imported: where a plugin would come from.

    ``value`` is the entry point's ``module:attr`` text.
    """

    group: str
    name: str
    value: str
    distribution: str = _UNKNOWN_DISTRIBUTION
    version: str = ""

    @property
    def builtin(self) -> bool:
        """True for mmkit's own entries, whose names no other plugin may take."""
        return _normalize(self.distribution) == _BUILTIN_DISTRIBUTION

    @property
    def culprit(self) -> str:
        """``distribution[name]``, the prefix of every message about this entry."""
        return f"{self.distribution}[{self.name}]"


@dataclass(frozen=True)
class PluginReport:
    """What became of one entry: its origin, its status (one of :data:`STATUSES`), why, and
    the fix. ``provides`` lists what an ``ok`` plugin contributes (configuration names of an
    architecture family, the name of a policy)."""

    group: str
    name: str
    distribution: str
    version: str
    value: str
    status: str
    message: str = ""
    fix: str = ""
    provides: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the plugin is in use."""
        return self.status == "ok"

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready dict (``provides`` as a list)."""
        d = asdict(self)
        d["provides"] = list(self.provides)
        return d

    def __str__(self) -> str:
        text = f"{self.group}:{self.name} ({self.distribution} {self.version}): {self.status}"
        if self.message:
            text += f": {self.message}"
        if self.fix:
            text += f"; fix: {self.fix}"
        return text


def _sort_key(entry: PluginEntry) -> tuple[str, str, str]:
    return (entry.group, entry.name, _normalize(entry.distribution))
