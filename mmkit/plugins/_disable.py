"""Switching plugins off: the ``MMKIT_DISABLE_PLUGINS`` globs, which entry they name, and
the hint every fix ends with.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from typing import Final

from mmkit.plugins._helpers import _normalize
from mmkit.plugins._records import PluginEntry

#: Environment variable of globs that disable plugins before they are imported.
DISABLE_ENV: Final = "MMKIT_DISABLE_PLUGINS"


def _disable_patterns(value: str) -> tuple[str, ...]:
    return tuple(p for p in re.split(r"[,\s]+", value.strip()) if p)


def _disabled_by(entry: PluginEntry, patterns: Sequence[str]) -> str | None:
    """The first pattern in ``patterns`` that names ``entry``, if any."""
    names = (entry.name.lower(), f"{entry.group}:{entry.name}".lower())
    distribution = _normalize(entry.distribution)
    for pattern in patterns:
        # Distribution names compare normalised on both sides (Foo_Bar == foo-bar); entry
        # names only case-insensitively, as "." and "_" are significant in them.
        if any(fnmatch.fnmatchcase(n, pattern.lower()) for n in names) or (
            fnmatch.fnmatchcase(distribution, _normalize(pattern))
        ):
            return pattern
    return None


def _disable_hint(entry: PluginEntry) -> str:
    return f"or disable it with {DISABLE_ENV}={entry.name}"
