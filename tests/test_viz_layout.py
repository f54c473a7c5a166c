"""The layout figure: every region drawn once, in order, with the V7 marks where they belong."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import plotly.graph_objects as go
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmkit import arch
from mmkit.arch.arm64 import CONFIGS as ARM64
from mmkit.viz import layout_figure, pgd_boundaries
from mmkit.viz.layout import KIND_COLORS, SchematicAxis, pgd_entries

CASES = [(name, kernel) for name in ARM64 for kernel in arch.KERNEL_ERAS]


def _shape(fig: go.Figure, name: str) -> go.layout.Shape | None:
    return next((s for s in fig.layout.shapes if s.name == name), None)


def _region_bars(fig: go.Figure) -> dict[str, tuple[float, float]]:
    """Bar id -> (left, right) on the x axis, for the region traces."""
    bars = {}
    for trace in fig.data:
        if trace.name == "PGD entry":
            continue
        for ident, base, width in zip(trace.ids, trace.base, trace.x, strict=True):
            bars[ident] = (base, base + width)
    return bars


@pytest.mark.parametrize(("name", "kernel"), CASES)
def test_every_kernel_region_is_one_bar_in_address_order(name: str, kernel: str) -> None:
    _check_bars(arch.get(name, kernel=kernel))


@pytest.mark.parametrize("name", arch.names())
def test_any_registered_configuration_draws(name: str) -> None:
    # Plugins' configurations too (CI installs plugins/*), with their default options.
    desc = arch.get(name)
    _check_bars(desc)
    kind = "teaching VA layout" if getattr(desc, "teaching_layout", False) else "kernel VA layout"
    assert layout_figure(desc).layout.title.text.startswith(f"{name}: {kind}")


@dataclass(frozen=True)
class _ToyRegion:  # a plugin's region: name, kind, start, end and nothing more
    name: str
    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class _Toy32:
    """A 32-bit plugin descriptor: no kernel era, no V7 report, kernel space below 2**32."""

    name: str = "toy32"

    def macros(self) -> dict[str, int]:
        return {"PGDIR_SHIFT": 21, "PTRS_PER_PGD": 2048}

    @property
    def regions(self) -> tuple[_ToyRegion, ...]:
        return (
            _ToyRegion("user", "user", 0, 0xC000_0000),
            _ToyRegion("lowmem", "linear", 0xC000_0000, 0xF000_0000),
            _ToyRegion("vmalloc", "vmalloc", 0xF000_0000, 0xFF80_0000),
            _ToyRegion("vectors", "vectors", 0xFF80_0000, 1 << 32),  # a kind mmkit lacks
        )


def test_plugin_descriptor_without_v7_report() -> None:
    toy = _Toy32()
    fig = layout_figure(toy)  # type: ignore[arg-type]
    _check_bars(toy)
    assert fig.layout.title.text.split("<br>")[0] == "toy32: kernel VA layout"
    assert "no V7 overlap test" in fig.layout.title.text
    assert _shape(fig, "v7-gap") is None and _shape(fig, "v7-shared-entry") is None
    # PGD entries at the top of *its* address space, 2 MB each, not near 2**64.
    spans = pgd_entries(toy)  # type: ignore[arg-type]
    assert spans[-1] == ((1 << 32) - (2 << 20), 1 << 32)
    assert "vectors" in {t.name for t in fig.data}


def _check_bars(desc: object) -> None:
    fig = layout_figure(desc)  # type: ignore[arg-type]
    regions = desc.regions  # type: ignore[attr-defined]
    kernel_regions = sorted((r for r in regions if r.kind != "user"), key=lambda r: r.start)
    bars = _region_bars(fig)
    assert list(bars) != [] and len(bars) == len(kernel_regions)
    ordered = [bars[f"{r.name}@{r.start:016x}"] for r in kernel_regions]
    # Side by side and without overlap: each bar starts where the previous one ends.
    assert ordered[0][0] == 0
    for (_, right), (left, right_next) in itertools.pairwise(ordered):
        assert left == pytest.approx(right) and right_next > left
    # Every bar visible (at least 1 unit wide: the schematic widths are log2(size) - 12).
    assert min(right - left for left, right in ordered) >= 0.99


@pytest.mark.parametrize(("name", "kernel"), CASES)
def test_v7_marks_follow_the_overlap_report(name: str, kernel: str) -> None:
    desc = arch.get(name, kernel=kernel)
    report = desc.vmalloc_vmemmap_overlap
    fig = layout_figure(desc)
    axis = SchematicAxis.of(
        sorted((r for r in desc.regions if r.kind != "user"), key=lambda r: r.start),
        cuts=pgd_boundaries(desc),
    )
    gap = _shape(fig, "v7-gap")
    assert gap is not None
    assert (gap.x0, gap.x1) == (axis.x(report.gap_start), axis.x(report.gap_end))
    shared = _shape(fig, "v7-shared-entry")
    notes = [a.name for a in fig.layout.annotations]
    if report.overlap:
        assert shared is not None and "v7-shared-entry" in notes
        # The shared entry holds both edges of the gap, so its box contains the gap band.
        assert shared.x0 <= gap.x0 < gap.x1 <= shared.x1
        assert f"{report.shared_entry:#018x}" in fig.layout.title.text
        assert "V7 test: overlap" in fig.layout.title.text
    else:
        assert shared is None and "v7-shared-entry" not in notes
        assert "V7 test: no overlap" in fig.layout.title.text


@pytest.mark.parametrize(("name", "kernel"), CASES)
def test_pgd_entries_cover_the_gap_edges(name: str, kernel: str) -> None:
    desc = arch.get(name, kernel=kernel)
    report = desc.vmalloc_vmemmap_overlap
    entry = 1 << desc.macros()["PGDIR_SHIFT"]
    spans = pgd_entries(desc)
    assert 1 <= len(spans) <= 16
    for start, end in spans:
        assert start % entry == 0 and end - start == entry  # real PGD entries
    starts = [s for s, _ in spans]
    assert starts == sorted(starts)
    for edge in (report.gap_start, report.gap_end - 1):
        assert any(start <= edge < end for start, end in spans)
    # The figure draws one dotted line per boundary and one bar per entry.
    fig = layout_figure(desc)
    lines = [s for s in fig.layout.shapes if (s.name or "").startswith("pgd-boundary-")]
    assert len(lines) == len(pgd_boundaries(desc))
    (pgd_trace,) = [t for t in fig.data if t.name == "PGD entry"]
    assert len(pgd_trace.ids) == len(spans)


def test_shared_entry_known_values() -> None:
    # kernel-facts §3.5: for 4K/48 both gap edges mask to 0xfffffd8000000000 (PGD index 507).
    fig = layout_figure(arch.get("arm64-4k-48"))
    assert "0xfffffd8000000000" in fig.layout.title.text
    (note,) = [a for a in fig.layout.annotations if a.name == "v7-shared-entry"]
    assert note.text.startswith("PGD entry 507 ")
    (pgd_trace,) = [t for t in fig.data if t.name == "PGD entry"]
    assert "pgd[507]@fffffd8000000000" in pgd_trace.ids


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "arm64-16k-47: kernel VA layout, Linux v5.4"),
        ({"kernel": "v6.1"}, "arm64-16k-47: kernel VA layout, Linux v6.1"),
        ({"kasan": "sw_tags"}, "arm64-16k-47: kernel VA layout, Linux v5.4, KASAN sw_tags"),
    ],
)
def test_title_names_config_and_era(options: dict[str, str], expected: str) -> None:
    fig = layout_figure(arch.get("arm64-16k-47", **options))
    assert fig.layout.title.text.split("<br>")[0] == expected


def test_kasan_region_drawn_only_with_kasan() -> None:
    def kinds(fig: go.Figure) -> set[str]:
        return {t.name for t in fig.data if t.ids}

    assert "KASAN shadow" not in kinds(layout_figure(arch.get("arm64-4k-48")))
    assert "KASAN shadow" in kinds(layout_figure(arch.get("arm64-4k-48", kasan="generic")))


def test_fixed_trace_set_for_in_place_updates() -> None:
    # The widget updates traces in place, so every configuration has the same traces.
    names = {tuple(t.name for t in layout_figure(arch.get(n)).data) for n in ARM64}
    assert len(names) == 1
    (trace_names,) = names
    assert trace_names[-1] == "PGD entry"
    assert len(trace_names) == len(KIND_COLORS)  # every kind but "gap" (drawn as a guard) + PGD


def test_figure_is_deterministic_and_serialisable() -> None:
    desc = arch.get("arm64-64k-52", kasan="generic", vabits_actual=52)
    first, second = layout_figure(desc), layout_figure(arch.get("arm64-64k-52", **desc.options()))
    assert first.to_dict() == second.to_dict()
    assert json.loads(first.to_json())["layout"]["title"]["text"] == first.layout.title.text


def test_hover_carries_exact_addresses() -> None:
    fig = layout_figure(arch.get("arm64-4k-48", kasan="generic"))
    (vmalloc,) = [t for t in fig.data if t.name == "vmalloc"]
    assert list(vmalloc.customdata[0]) == [
        "vmalloc",
        "ffffa00010000000",
        "fffffdffbffeffff",
        "~93TB",
    ]  # memory.rst's row


@given(st.lists(st.integers(min_value=0, max_value=(1 << 64) - 1), min_size=2, max_size=20))
def test_schematic_axis_is_monotonic(addresses: list[int]) -> None:
    desc = arch.get("arm64-4k-48")
    regions = sorted((r for r in desc.regions if r.kind != "user"), key=lambda r: r.start)
    axis = SchematicAxis.of(regions, cuts=pgd_boundaries(desc))
    ordered = sorted(addresses)
    xs = [axis.x(va) for va in ordered]
    assert xs == sorted(xs)
    assert all(0 <= x <= axis.length for x in xs)


def test_a_teaching_layout_is_never_titled_a_kernel_layout() -> None:
    title = layout_figure(arch.get("teach-4k-39")).layout.title.text
    assert title.startswith("teach-4k-39: teaching VA layout (not a kernel's)")
    assert "kernel VA layout" not in title
