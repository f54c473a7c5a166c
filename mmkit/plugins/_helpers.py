"""Small helpers of the plugin registry: :func:`natural_key`, the order a family's
``names()`` must use, and the text helpers its messages are built with (distribution-name
normalisation, one-line exceptions and values, a ``module:attr`` for a runtime object).
"""

from __future__ import annotations

import os
import re
import traceback


def natural_key(name: str) -> tuple[object, ...]:
    """Sort key that compares digit runs as numbers: the order ``names()`` must use.

    >>> sorted(["arm64-64k-42", "arm64-16k-36", "arm64-4k-48", "arm64-4k-39"], key=natural_key)
    ['arm64-4k-39', 'arm64-4k-48', 'arm64-16k-36', 'arm64-64k-42']
    """
    # re.split with a group alternates text and digits, text first, so position i always
    # holds the same type in every key and the tuples compare without a TypeError.
    return tuple(int(p) if i % 2 else p for i, p in enumerate(re.split(r"(\d+)", name)))


def _normalize(distribution: str) -> str:
    """PEP 503 normalisation, so ``MMKit_Example.Arch`` and ``mmkit-example-arch`` match."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _one_line(text: object, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _describe_exception(exc: BaseException) -> str:
    """``TypeError: boom (at plugin.py:12)``: what was raised and where, on one line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {_one_line(exc)}{where}"


def _object_ref(obj: object) -> str:
    """The best ``module:attr`` text for an object registered at runtime."""
    try:
        qualname = getattr(obj, "__qualname__", None)
    except KeyboardInterrupt:
        raise
    except BaseException:  # an object whose attributes raise is reported, not fatal
        qualname = None
    if isinstance(qualname, str):
        return f"{getattr(obj, '__module__', '?')}:{qualname}"
    kind = type(obj)
    return f"<{kind.__module__}.{kind.__qualname__} object>"
