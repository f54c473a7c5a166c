"""How engine records print: addresses, pfns, descriptors and masks in hex.

A learner reads records in a notebook cell or a traceback, where ``18446741873612488704``
says nothing and ``0xfffffdffbfff0000`` is VMALLOC_END at a glance. These helpers only
change how values *print*: the records keep their plain int fields, their equality and
hashing.

* :class:`HexInt` is an ``int`` whose ``repr`` is hex (``str`` and formatting stay those of
  ``int``), for values handed out in a mapping such as ``macros()``.
* :func:`record_repr` builds a dataclass record's ``repr``: the named fields in hex, the
  others as ``repr`` shows them, fields left at their default (or ``None``) left out.

>>> HexInt(4096), HexInt(4096) + 1, str(HexInt(4096))
(0x1000, 4097, '4096')
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Collection

__all__ = ["HexInt", "hex_value", "record_repr"]


class HexInt(int):
    """An ``int`` that shows itself in hex: ``repr(HexInt(4096)) == '0x1000'``.

    Only ``repr`` changes. Arithmetic returns plain ints; comparisons, hashing, ``json``,
    ``str()``, ``format()`` and numpy see the same number as before.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return hex(self)

    # int's str() falls back to repr(); keep it decimal so f-strings and str() are unchanged
    __str__ = int.__repr__


def hex_value(value: object) -> str:
    """``value`` in hex when it is an integer (numpy's too), a tuple of them as a tuple of
    hex, anything else as ``repr`` shows it."""
    if isinstance(value, tuple | list):
        inner = ", ".join(hex_value(v) for v in value)
        if isinstance(value, tuple) and len(value) == 1:
            inner += ","
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    if not isinstance(value, bool):
        try:
            return hex(operator.index(value))  # type: ignore[arg-type]
        except TypeError:
            pass
    return repr(value)


def _is_default(field: dataclasses.Field[object], value: object) -> bool:
    if value is None:
        return True
    if field.default is not dataclasses.MISSING:
        default = field.default
    elif field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    else:
        return False
    return type(value) is type(default) and value == default


def record_repr(record: object, hex_fields: Collection[str], *, keep: Collection[str] = ()) -> str:
    """``Name(field=value, ...)`` for a dataclass record, with ``hex_fields`` in hex.

    Fields whose value is ``None`` or the field's default are left out, except those named
    in ``keep``.
    """
    parts = []
    for field in dataclasses.fields(record):  # type: ignore[arg-type]
        if not field.repr:
            continue
        value = getattr(record, field.name)
        if field.name not in keep and _is_default(field, value):
            continue
        shown = hex_value(value) if field.name in hex_fields else repr(value)
        parts.append(f"{field.name}={shown}")
    return f"{type(record).__name__}({', '.join(parts)})"
