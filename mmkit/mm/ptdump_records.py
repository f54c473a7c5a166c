"""The records of a kernel page-table dump: one per line of ``kernel_page_tables``.

:func:`~mmkit.mm.ptdump.ptdump_walk` yields them and :func:`~mmkit.mm.ptdump.parse_ptdump`
returns them; :func:`~mmkit.mm.ptdump.format_ptdump` renders them. A :class:`PtdumpRange` is
one range line printed by the arm64 ``note_page()`` (v5.3/v5.4/v5.7
``arch/arm64/mm/dump.c``, v6.1 ``arch/arm64/mm/ptdump.c``) and a :class:`PtdumpMarker` one
``---[ name ]---`` line (``struct addr_marker`` of the same files). The private ``_M64`` and
``_TOP`` (``2**64``, the end the kernel prints as ``0x0000000000000000``) are shared by every
``ptdump_*`` module. Import the public names from :mod:`mmkit.mm.ptdump`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmkit._readable import record_repr

__all__ = ["PtdumpMarker", "PtdumpRange", "PtdumpRecord"]

_M64 = (1 << 64) - 1
_TOP = 1 << 64


# ------------------------------------------------------------------------------- records
@dataclass(frozen=True, slots=True)
class PtdumpMarker:
    """One ``---[ name ]---`` line: the walk reached ``address`` (``addr_marker``).

    ``address`` is the marker's ``start_address``; ``None`` when parsed from text (the line
    does not show it).
    """

    name: str
    address: int | None = None

    def __repr__(self) -> str:
        """``address`` in hex (left out when parsed from text)."""
        return record_repr(self, ("address",))


@dataclass(frozen=True, slots=True)
class PtdumpRange:
    """One range line of the dump.

    ``end`` is exclusive and may be ``2**64`` (the kernel prints it as ``0x0000000000000000``).
    ``level`` is the level name as printed (``"PGD"``, ``"PUD"``, ``"PMD"``, ``"PTE"``).
    ``prot`` is the masked attribute bits ``note_page()`` merged on (``None`` when parsed);
    ``attrs`` the attribute strings as printed, blanks included (walk), or the tokens in
    text order (parsed). ``size`` is in bytes, ``level_no`` the ``note_page()`` level number
    (arch walker 1..4, generic walker 0..4; ``None`` when parsed).
    """

    start: int
    end: int
    level: str
    prot: int | None
    attrs: tuple[str, ...]
    size: int
    level_no: int | None = None

    def __repr__(self) -> str:
        """``start``, ``end``, ``prot`` and ``size`` in hex; ``level_no`` decimal."""
        return record_repr(self, ("start", "end", "prot", "size"), keep=("attrs",))

    @property
    def tokens(self) -> frozenset[str]:
        """The printed attributes as a set of words, blanks dropped (``"x "`` is ``"x"``)."""
        return frozenset(a.strip() for a in self.attrs if a.strip())

    @property
    def mapped(self) -> bool:
        """Whether the range maps memory: it shows attributes and none of them is ``F``."""
        tokens = self.tokens
        return bool(tokens) and "F" not in tokens


PtdumpRecord = PtdumpRange | PtdumpMarker
