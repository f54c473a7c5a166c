"""Lesson 01's exercises: page-table geometry, splitting a VA, and V7's gap test by hand.

* **01a** a geometry quantity (``PGTABLE_LEVELS``, ``PGDIR_SHIFT``, ``PTRS_PER_PGD`` ...
  ``PTRS_PER_PTE``) of one of the eight configurations the v5.4 Kconfig allows. The kernel
  derives them in v5.4 ``arch/arm64/include/asm/pgtable-hwdef.h``: every level resolves
  ``PAGE_SHIFT - 3`` bits (a table page is one granule of 8-byte descriptors), the top level
  gets what is left of ``VA_BITS``, and a level the build does not use is folded
  (``include/asm-generic/pgtable-nopud.h``, ``pgtable-nopmd.h``: one entry, no table page).
  Checked with :meth:`~mmkit.arch.arm64.Arm64Descriptor.macros`.
* **01b** the table index of a seeded kernel VA at one level, checked with
  :meth:`~mmkit.arch.arm64.Arm64Descriptor.indices` (what ``pgd_index()``, ``pud_index()``,
  ``pmd_index()`` and ``pte_index()`` compute; :func:`mmkit.pgtable.walk.translate` reads the
  same entries on a machine).
* **01c** one edge of the gap between vmalloc and the vmemmap, masked with ``PGDIR_MASK``,
  and **01d** the verdict of V7 3/3's ``find_vmalloc_vmemmap_overlap()`` (both edges in one
  PGD entry?), for a configuration in the v5.4 or the v5.3 layout. Computed from the
  layout macros (``VMALLOC_END``, ``VMEMMAP_START``, ``PGDIR_SHIFT``; v5.4
  ``arch/arm64/include/asm/memory.h``, ``pgtable.h``); v5.4 flags 4K/48 and 16K/48, as the V7
  cover letter says, v5.3 only 16K/48.

>>> ex = LevelIndexExercise()
>>> v = ex.variant(0)
>>> ex.check(v, ex.answer(v)).correct
True
>>> [hex(e) for e in gap_edges("arm64-4k-48")]
['0xfffffd8000000000', '0xfffffd8000000000']
>>> [hex(e) for e in gap_edges("arm64-4k-48", "v5.3")]
['0xffff7d8000000000', '0xffff7e0000000000']
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import cache
from typing import Any

from mmkit import arch
from mmkit.arch.arm64 import CONFIGS
from mmkit.exercises import Exercise, Feedback, Mistake, Variant, register

__all__ = [
    "DIFFERENT",
    "ERAS",
    "QUANTITIES",
    "SAME",
    "GapEdgeExercise",
    "GapVerdictExercise",
    "GeometryExercise",
    "LevelIndexExercise",
    "gap_edges",
    "gap_inputs",
    "geometry_seed",
]

_M64 = (1 << 64) - 1

#: The quantities 01a asks about, in the order a walk meets them.
QUANTITIES: tuple[str, ...] = (
    "PGTABLE_LEVELS",
    "PGDIR_SHIFT",
    "PTRS_PER_PGD",
    "PTRS_PER_PUD",
    "PTRS_PER_PMD",
    "PTRS_PER_PTE",
)

#: The eras of 01c/01d: after (v5.4) and before (v5.3) the 52-bit kernel VA series.
ERAS: tuple[str, ...] = ("v5.4", "v5.3")


@cache
def _macros(config: str, kernel: str = "v5.4") -> dict[str, int]:
    return dict(arch.get(config, kernel=kernel).macros())


def _label(config: str) -> str:
    _, granule, va = config.split("-")
    return f"{granule.upper()}/{va}"


# --------------------------------------------------------------------------- 01a
def _geometry_combos() -> list[tuple[str, str]]:
    combos = [(c, q) for c in CONFIGS for q in QUANTITIES]
    random.Random(1).shuffle(combos)
    return combos


_COMBOS = _geometry_combos()


def geometry_seed(config: str, quantity: str) -> int:
    """The smallest seed whose 01a variant asks for ``quantity`` of ``config``.

    >>> GeometryExercise().variant(geometry_seed("arm64-16k-48", "PTRS_PER_PGD")).params
    {'config': 'arm64-16k-48', 'quantity': 'PTRS_PER_PGD'}
    """
    return _COMBOS.index((config, quantity))


class GeometryExercise(Exercise):
    """01a: one geometry macro of one configuration (v5.4), checked with ``macros()``."""

    id = "01a"
    lesson = "01"
    title = "Levels, shifts and table sizes"
    kind = "number"

    def variant(self, seed: int) -> Variant:
        config, quantity = _COMBOS[seed % len(_COMBOS)]
        m = _macros(config)
        return Variant(
            self.id,
            seed,
            f"On <b>{config}</b> ({m['PAGE_SIZE'] >> 10} KiB pages, {m['VA_BITS']}-bit VA, "
            f"Linux v5.4), what is <code>{quantity}</code>?",
            self.kind,
            (),
            "A table page is one page of 8-byte descriptors, so each level resolves "
            "PAGE_SHIFT − 3 bits; count levels up from the page offset, and give the top "
            "level whatever VA bits are left. A folded level has a single entry.",
            {"config": config, "quantity": quantity},
        )

    def answer(self, variant: Variant) -> int:
        p = variant.params
        return int(_macros(p["config"])[p["quantity"]])

    def _wrong(self, variant: Variant) -> dict[str, list[int]]:
        """Typical wrong answers by the misconception they show."""
        m = _macros(variant.params["config"])
        q = variant.params["quantity"]
        stride = m["PAGE_SHIFT"] - 3
        out: dict[str, list[int]] = {"full": [], "folded": [], "unfolded": [], "stride": []}
        if q == "PTRS_PER_PGD":
            out["full"] = [1 << stride, 512]
        elif q in ("PTRS_PER_PUD", "PTRS_PER_PMD"):
            out["folded"] = [1 << stride, 512]
            out["unfolded"] = [1]
        elif q == "PTRS_PER_PTE":
            out["stride"] = [512, m["PAGE_SIZE"]]
        elif q == "PGDIR_SHIFT":
            out["stride"] = [m["VA_BITS"] - stride, m["PAGE_SHIFT"] + 9 * (m["PGTABLE_LEVELS"] - 1)]
        elif q == "PGTABLE_LEVELS":
            out["stride"] = [4, -(-m["VA_BITS"] // stride)]
        answer = self.answer(variant)
        return {k: [w for w in v if w != answer] for k, v in out.items()}

    def check(self, variant: Variant, answer: Any) -> Feedback:
        value = self.parse(variant, answer)
        right = self.answer(variant)
        q = variant.params["quantity"]
        if value == right:
            return Feedback(True, f"Right: {q} = {right} on {variant.params['config']}.")
        wrong = self._wrong(variant)
        m = _macros(variant.params["config"])
        if value in wrong["full"]:
            msg = (
                "The top level gets the leftover bits: VA_BITS − PGDIR_SHIFT of them, which "
                "need not be a full stride of PAGE_SHIFT − 3."
            )
        elif q in ("PTRS_PER_PUD", "PTRS_PER_PMD") and value in wrong["folded"]:
            msg = (
                f"With {m['PGTABLE_LEVELS']} levels this level is folded: it has no table "
                "page, and the kernel counts a single entry that points on to the next level."
            )
        elif value in wrong["unfolded"]:
            msg = (
                f"With {m['PGTABLE_LEVELS']} levels this level is not folded: it has its own "
                "table pages, a full page of 8-byte entries."
            )
        elif value in wrong["stride"]:
            msg = (
                "Each level resolves PAGE_SHIFT − 3 bits (a table page is one granule of "
                "8-byte descriptors), not always 9: count the levels from the page offset up."
            )
        else:
            msg = variant.hint
        return Feedback(False, "Not yet: " + msg)

    def solution(self, variant: Variant) -> str:
        m = _macros(variant.params["config"])
        q = variant.params["quantity"]
        p, va, levels = m["PAGE_SHIFT"], m["VA_BITS"], m["PGTABLE_LEVELS"]
        stride = p - 3
        why = {
            "PGTABLE_LEVELS": f"(VA_BITS − 4) // (PAGE_SHIFT − 3) = ({va} − 4) // {stride}",
            "PGDIR_SHIFT": f"PAGE_SHIFT + (PAGE_SHIFT − 3) × (levels − 1) = {p} + {stride} × "
            f"{levels - 1}",
            "PTRS_PER_PGD": f"2^(VA_BITS − PGDIR_SHIFT) = 2^({m.get('MAX_USER_VA_BITS', va)} "
            f"− {m['PGDIR_SHIFT']}): the top level gets the leftover bits",
            "PTRS_PER_PUD": "1 if the PUD is folded (fewer than 4 levels), else 2^(PAGE_SHIFT − 3)",
            "PTRS_PER_PMD": "1 if the PMD is folded (2 levels), else 2^(PAGE_SHIFT − 3)",
            "PTRS_PER_PTE": f"2^(PAGE_SHIFT − 3) = 2^{stride}: a page of 8-byte descriptors",
        }[q]
        return f"{q} = {self.answer(variant)}: {why}."

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        wrong = self._wrong(variant)
        says = {
            "full": "top level gets the leftover bits",
            "folded": "folded",
            "unfolded": "not folded",
            "stride": "PAGE_SHIFT − 3",
        }
        out, seen = [], set()
        for kind, values in wrong.items():
            for v in values:
                if v not in seen:
                    seen.add(v)
                    out.append(Mistake(v, says[kind]))
        return out


# --------------------------------------------------------------------------- 01b
def _va_for(config: str, seed: int) -> int:
    """A page-aligned VA inside a named region (linear map, vmalloc, vmemmap...)."""
    d = arch.get(config)
    rng = random.Random(f"01b-{config}-{seed}")
    regions = [r for r in d.regions if r.kind not in ("user", "guard", "gap")]
    r = regions[rng.randrange(len(regions))]
    page = d.page_size
    pages = (r.end - r.start) // page
    return r.start + rng.randrange(pages) * page


def _shift_name(level: str) -> str:
    """The kernel's name for the shift of ``level``'s index (``pgd_index()`` uses PGDIR_SHIFT)."""
    return {"pgd": "PGDIR_SHIFT", "pte": "PAGE_SHIFT"}.get(level, f"{level.upper()}_SHIFT")


class LevelIndexExercise(Exercise):
    """01b: the index of a seeded VA at one level, checked with ``indices()``."""

    id = "01b"
    lesson = "01"
    title = "Split a VA into table indices"
    kind = "number"

    def variant(self, seed: int) -> Variant:
        config = CONFIGS[seed % len(CONFIGS)]
        d = arch.get(config)
        va = _va_for(config, seed)
        levels = [lvl for lvl, _ in d.indices(va)]
        level = levels[(seed // len(CONFIGS)) % len(levels)]
        region = d.region_of(va).name
        return Variant(
            self.id,
            seed,
            f"On <b>{config}</b> (Linux v5.4), the kernel VA <code>{va:#x}</code> (in "
            f"{region}) is looked up in the <b>{level.name.upper()}</b> table (hardware level "
            f"L{level.hw_level}). At which index (entry number in that table)?",
            self.kind,
            (),
            f"The {level.name.upper()} index is (va >> {_shift_name(level.name)}) & "
            f"(PTRS_PER_{level.name.upper()} − 1). Every level below it takes PAGE_SHIFT − 3 "
            "bits.",
            {"config": config, "va": va, "level": level.name},
        )

    def answer(self, variant: Variant) -> int:
        p = variant.params
        d = arch.get(p["config"])
        return dict((lvl.name, i) for lvl, i in d.indices(p["va"]))[p["level"]]

    def _wrong(self, variant: Variant) -> dict[str, list[int]]:
        p = variant.params
        d = arch.get(p["config"])
        va, right = p["va"], self.answer(variant)
        indices = d.indices(va)
        names = [lvl.name for lvl, _ in indices]
        lvl = next(lvl for lvl, _ in indices if lvl.name == p["level"])
        depth = len(names) - 1 - names.index(p["level"])  # levels below this one
        nine = (va >> (d.page_shift + 9 * depth)) & 511
        out = {
            "mask": [va >> lvl.shift],
            "nine": [nine] if d.page_shift != 12 else [],
            "level": [i for other, i in indices if other.name != p["level"]],
        }
        seen = {right}
        for k in out:  # a value belongs to the first misconception that explains it
            out[k] = [w for w in out[k] if not (w in seen or seen.add(w))]
        return out

    def check(self, variant: Variant, answer: Any) -> Feedback:
        value = self.parse(variant, answer)
        right = self.answer(variant)
        level = variant.params["level"].upper()
        if value == right:
            return Feedback(True, f"Right: {level} index {right} ({right:#x}).")
        wrong = self._wrong(variant)
        if value in wrong["mask"]:
            msg = (
                f"Keep only this level's bits: mask the shifted VA with PTRS_PER_{level} − 1 "
                "(the bits above belong to the levels above)."
            )
        elif value in wrong["nine"]:
            msg = (
                "That uses 9-bit indices, which is 4K's stride: the stride is PAGE_SHIFT − 3 "
                f"= {arch.get(variant.params['config']).page_shift - 3} bits per level here."
            )
        elif value in wrong["level"]:
            msg = (
                "That is the index at another level: shift by "
                f"{_shift_name(variant.params['level'])}."
            )
        else:
            msg = variant.hint
        return Feedback(False, "Not yet: " + msg)

    def solution(self, variant: Variant) -> str:
        p = variant.params
        d = arch.get(p["config"])
        lvl = next(lvl for lvl, _ in d.indices(p["va"]) if lvl.name == p["level"])
        right = self.answer(variant)
        top = lvl.shift + (lvl.ptrs.bit_length() - 1) - 1
        return (
            f"{right} ({right:#x}): bits [{top}:{lvl.shift}] of {p['va']:#x}, i.e. "
            f"({p['va']:#x} >> {lvl.shift}) & {lvl.ptrs - 1:#x}."
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        wrong = self._wrong(variant)
        says = {"mask": "mask", "nine": "stride is PAGE_SHIFT − 3", "level": "another level"}
        return [Mistake(v, says[k]) for k, vs in wrong.items() for v in vs]


# --------------------------------------------------------------------------- 01c, 01d
def gap_inputs(config: str, kernel: str = "v5.4") -> dict[str, int]:
    """The layout macros V7's test reads (no verdict): the vmalloc and vmemmap bounds and
    ``PGDIR_SHIFT``, for ``config`` in ``kernel``'s layout.

    >>> hex(gap_inputs("arm64-4k-48")["VMALLOC_END"])
    '0xfffffdffbfff0000'
    """
    m = _macros(config, kernel)
    keys = ("VMALLOC_START", "VMALLOC_END", "VMEMMAP_START", "VMEMMAP_END", "PGDIR_SHIFT")
    return {k: int(m[k]) for k in keys}


def _pgdir_mask(m: dict[str, int]) -> int:
    return ~((1 << m["PGDIR_SHIFT"]) - 1) & _M64


def _raw_edges(m: dict[str, int]) -> tuple[int, int]:
    """V7's gap: vmalloc end -> vmemmap start when the vmemmap is above, else the reverse."""
    if m["VMEMMAP_START"] > m["VMALLOC_END"]:
        return m["VMALLOC_END"], m["VMEMMAP_START"]
    return m["VMEMMAP_END"], m["VMALLOC_START"]


def gap_edges(config: str, kernel: str = "v5.4") -> tuple[int, int]:
    """Both edges of V7's gap, each ANDed with ``PGDIR_MASK`` (see the module docstring)."""
    m = gap_inputs(config, kernel)
    mask = _pgdir_mask(m)
    start, end = _raw_edges(m)
    return start & mask, end & mask


def _gap_variant(seed: int) -> tuple[str, str]:
    combos = [(c, k) for k in ERAS for c in CONFIGS]
    random.Random(2).shuffle(combos)
    return combos[seed % len(combos)]


class GapEdgeExercise(Exercise):
    """01c: one edge of V7's gap, masked with ``PGDIR_MASK``."""

    id = "01c"
    lesson = "01"
    title = "The gap's edges, masked"
    kind = "number"

    def variant(self, seed: int) -> Variant:
        config, kernel = _gap_variant(seed)
        edge = ("start", "end")[(seed // 16) % 2]
        what = "VMALLOC_END" if edge == "start" else "VMEMMAP_START"
        return Variant(
            self.id,
            seed,
            f"On <b>{config}</b> with the <b>Linux {kernel}</b> layout, V7's gap "
            f"<b>{edge}s</b> at <code>{what}</code>. What is <code>{what} &amp; "
            "PGDIR_MASK</code> (answer in hex, 0x...)?",
            self.kind,
            (),
            "PGDIR_MASK = ~(PGDIR_SIZE − 1) = ~((1 << PGDIR_SHIFT) − 1): it keeps the bits "
            "that choose the PGD entry. Read the macros with gap_inputs(config, kernel).",
            {"config": config, "kernel": kernel, "edge": edge},
        )

    def answer(self, variant: Variant) -> int:
        p = variant.params
        start, end = gap_edges(p["config"], p["kernel"])
        return start if p["edge"] == "start" else end

    def _wrong(self, variant: Variant) -> dict[str, list[int]]:
        p = variant.params
        m = gap_inputs(p["config"], p["kernel"])
        mask = _pgdir_mask(m)
        raw = _raw_edges(m)[0 if p["edge"] == "start" else 1]
        other = m["VMEMMAP_END"] if p["edge"] == "end" else m["VMALLOC_START"]
        out = {"unmasked": [raw], "bounds": [other, other & mask]}
        seen = {self.answer(variant)}
        for k in out:
            out[k] = [w for w in out[k] if not (w in seen or seen.add(w))]
        return out

    def check(self, variant: Variant, answer: Any) -> Feedback:
        value = self.parse(variant, answer)
        right = self.answer(variant)
        if value == right:
            return Feedback(True, f"Right: {right:#x}.")
        wrong = self._wrong(variant)
        if value in wrong["unmasked"]:
            msg = "That is the edge itself: AND it with PGDIR_MASK to get its PGD entry's base."
        elif value in wrong["bounds"]:
            msg = (
                "The gap is vmalloc end → vmemmap start (VMALLOC_END to VMEMMAP_START), the "
                "space between the two areas, not their other ends."
            )
        else:
            msg = variant.hint
        return Feedback(False, "Not yet: " + msg)

    def solution(self, variant: Variant) -> str:
        p = variant.params
        m = gap_inputs(p["config"], p["kernel"])
        raw = _raw_edges(m)[0 if p["edge"] == "start" else 1]
        return (
            f"{self.answer(variant):#x}: {raw:#x} & {_pgdir_mask(m):#x} (PGDIR_SHIFT = "
            f"{m['PGDIR_SHIFT']})."
        )

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        wrong = self._wrong(variant)
        says = {"unmasked": "PGDIR_MASK", "bounds": "vmalloc end → vmemmap start"}
        return [Mistake(hex(v), says[k]) for k, vs in wrong.items() for v in vs]


#: 01d's two options.
SAME = "Same PGD entry: V7 never frees the vmemmap's empty tables here"
DIFFERENT = "Different PGD entries: V7 frees the vmemmap's empty tables"


class GapVerdictExercise(Exercise):
    """01d: does V7's test say overlap (both masked edges equal)?"""

    id = "01d"
    lesson = "01"
    title = "V7's verdict"
    kind = "choice"

    def variant(self, seed: int) -> Variant:
        config, kernel = _gap_variant(seed + 5)
        return Variant(
            self.id,
            seed,
            f"On <b>{config}</b> with the <b>Linux {kernel}</b> layout, do both edges of the "
            "gap (VMALLOC_END and VMEMMAP_START) fall in the same PGD entry?",
            self.kind,
            (SAME, DIFFERENT),
            "Mask both edges with PGDIR_MASK and compare. The gap is about PUD_SIZE wide; "
            "compare that with PGDIR_SIZE.",
            {"config": config, "kernel": kernel},
        )

    def answer(self, variant: Variant) -> str:
        start, end = gap_edges(variant.params["config"], variant.params["kernel"])
        return SAME if start == end else DIFFERENT

    def _why(self, variant: Variant) -> str:
        p = variant.params
        m = _macros(p["config"], p["kernel"])
        start, end = gap_edges(p["config"], p["kernel"])
        if m["PGTABLE_LEVELS"] < 4:
            return (
                f"With {m['PGTABLE_LEVELS']} levels the PUD is folded: PUD_SIZE = PGDIR_SIZE, "
                f"so the gap crosses a PGD boundary ({start:#x} ≠ {end:#x})."
            )
        if start == end:
            return (
                f"With 4 levels PUD_SIZE ({m['PUD_SIZE']:#x}) is far smaller than PGDIR_SIZE "
                f"({m['PGDIR_SIZE']:#x}); both edges mask to {start:#x}."
            )
        return (
            f"Mask both edges: in this layout VMEMMAP_START sits exactly on a PGD boundary "
            f"({end:#x}), so the edges mask to {start:#x} and {end:#x}."
        )

    def check(self, variant: Variant, answer: Any) -> Feedback:
        value = self.parse(variant, answer)
        if value == self.answer(variant):
            return Feedback(True, "Right. " + self._why(variant))
        p = variant.params
        m = _macros(p["config"], p["kernel"])
        if value == SAME and m["PGTABLE_LEVELS"] < 4:
            msg = (
                f"With {m['PGTABLE_LEVELS']} levels the PUD is folded: PUD_SIZE = PGDIR_SIZE, "
                "and the gap is about PUD_SIZE wide. Mask both edges and compare."
            )
        elif value == SAME:
            msg = "Mask both edges and compare: where the layout puts VMEMMAP_START matters."
        else:
            msg = (
                "With 4 levels PUD_SIZE is far smaller than PGDIR_SIZE. Mask both edges and "
                "compare."
            )
        return Feedback(False, "Not yet: " + msg)

    def solution(self, variant: Variant) -> str:
        return f"{self.answer(variant)}. {self._why(variant)}"

    def mistakes(self, variant: Variant) -> Sequence[Mistake]:
        right = self.answer(variant)
        wrong = DIFFERENT if right == SAME else SAME
        return [Mistake(wrong, "Mask both edges")]


register(GeometryExercise())
register(LevelIndexExercise())
register(GapEdgeExercise())
register(GapVerdictExercise())
