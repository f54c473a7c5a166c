"""mmkit.kernel_source: every line the engine steps through has a listing line to highlight.

The ground truth is the engine itself: every scenario the kit has is run, every step it
yields is collected with the kernel era and policy of its machine, and each must be found
in the listing chosen for that era and policy. A step line nobody wrote a listing line for
(a new engine line, or a listing edited away from it) fails here.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator

import pytest

from mmkit import boot as boot_module
from mmkit import kernel_source as ks
from mmkit.events import Step
from mmkit.machine import Machine
from mmkit.mm.hotplug import HOTPLUG_KERNELS
from mmkit.mm.vmalloc import vmalloc
from mmkit.policies import HotplugPolicy
from mmkit.policies import get as get_policy
from mmkit.policies import names as policy_names
from mmkit.scenarios.memblock_order import memblock_order
from mmkit.scenarios.races import ptdump_race, tlb_order, vmalloc_race
from mmkit.sched.explore import replay

Seen = dict[tuple[str, str, str, str], Step]  # (function, line, kernel, policy) -> a step


def _add(seen: Seen, steps: Iterable[Step], kernel: str, policy: str) -> None:
    for s in steps:
        seen.setdefault((s.function, s.line, kernel, policy), s)


def _first_free_block(m: Machine) -> int:
    size = m.desc.memory_block_size
    top = max(s + n for s, n in m.boot_memory)
    return -(-top // size) * size


def _machine_steps(seen: Seen, config: str, policy: str, kernel: str, **kw: object) -> None:
    """Boot (its steps recorded too), hot-add/remove at the arch level, the whole
    add/offline/remove flow, a vmalloc and a load."""
    boot_steps: list[Step] = []
    real = boot_module.boot_steps

    def spy(m: Machine, n: int) -> Iterator[Step]:
        for s in real(m, n):
            boot_steps.append(s)
            yield s

    boot_module.boot_steps = spy
    try:
        m = Machine(config, policy=policy, kernel=kernel, **kw)
    finally:
        boot_module.boot_steps = real
    start = _first_free_block(m)
    size = m.desc.memory_block_size
    m.hot_add(start, size)
    m.hot_remove(start, size)
    m.add_memory(0, start, size)
    m.offline_block(m.block_of(start))
    m.remove_memory(start, size)
    m.run(vmalloc(m, 3 * m.page_size))
    m.access(m.lm_va(m.boot_memory[0][0]))
    _add(seen, boot_steps, m.kernel, m.policy.name)
    _add(seen, m.history, m.kernel, m.policy.name)


def _race_steps(seen: Seen, race) -> None:
    """The race stepped to the end by its scheduler, and its shortest failing schedule
    (bound 2) replayed and run on."""
    s = race.scheduler()
    s.run()
    _add(seen, s.history, s.machine.kernel, s.machine.policy.name)
    result = race.explore(bound=2)
    if result.shortest:
        r = replay(race.factory, result.shortest)
        r.run()
        _add(seen, r.history, r.machine.kernel, r.machine.policy.name)


@pytest.fixture(scope="module")
def seen() -> Seen:
    out: Seen = {}
    policies = policy_names()
    # the listings vary by kernel era (generic hotplug) or by policy (arch teardown,
    # ptdump), never by both: every era under one policy, every policy on several layouts
    for kernel in HOTPLUG_KERNELS:
        _machine_steps(out, "arm64-4k-48", "v5.7", kernel)
    for i, policy in enumerate(policies):
        kernel = HOTPLUG_KERNELS[i % len(HOTPLUG_KERNELS)]
        _machine_steps(out, "arm64-4k-48", policy, kernel)
        _machine_steps(out, "arm64-4k-39", policy, "v5.4")  # 3 levels, PUD folded
        _machine_steps(out, "arm64-64k-42", policy, "v5.7")  # 2 levels, 512 MiB blocks
        _machine_steps(out, "arm64-16k-47", policy, "v6.1", rodata_full=True)
        _machine_steps(out, "arm64-4k-48", policy, "v5.5", rodata_full=True)
        _machine_steps(out, "arm64-16k-36", policy, "v5.3", fine=True)
    _machine_steps(out, "arm64-64k-42", "v5.7", "v5.4", fine=True, rodata_full=True)
    _machine_steps(out, "arm64-4k-48", "v3", "v5.4", fine=True)
    for race in (
        ptdump_race("arm64-4k-48", "naive"),
        ptdump_race("arm64-4k-48", "v5.7"),
        tlb_order("v3"),
        tlb_order("v5.7"),
        *(vmalloc_race("teach-4k-39", p) for p in policies),
        vmalloc_race("arm64-4k-48", "naive"),
    ):
        _race_steps(out, race)
    for kernel in ("v5.3", "v5.4", "v5.5"):
        scenario = memblock_order(kernel)
        _add(out, (f.step for f in scenario.run()), kernel, scenario.machine.policy.name)
    return out


def test_the_scenarios_cover_the_variants(seen: Seen) -> None:
    """The collection really exercises what the listings vary on (else the next test
    proves little): every policy, every kernel era, coarse and fine steps, both races'
    failing sides, patch 1/3's BUG."""
    assert {p for *_, p in seen} == set(policy_names())
    assert {k for _, _, k, _ in seen} >= set(HOTPLUG_KERNELS)
    fns = {f for f, *_ in seen}
    for fn in (
        "remove_pagetable",
        "free_empty_pud_table",
        "walk_pte",
        "__pte_alloc",
        "early_fixmap_init",
        "unregister_memory_block_under_nodes",
        "reader",
    ):
        assert fn in fns, fn
    lines = {line for _, line, *_ in seen}
    assert any(line.startswith("sysfs_create_link_nowarn") and "-EEXIST" in line for line in lines)
    assert "BUG_ON(ret)" in lines
    assert any(s.count > 1 for s in seen.values()) and any(s.count == 1 for s in seen.values())


def _unlisted(seen: Seen) -> list[str]:
    """Each collected step line that the listing chosen for it does not have."""
    missing = []
    for (fn, line, kernel, policy), _step in sorted(seen.items()):
        if line.endswith("/* policy */"):
            continue  # a policy hook's own step (mmkit.pgtable.keep), not the kernel's code
        chosen = ks.listing(fn, kernel, policy)
        if chosen is None:
            missing.append(f"{fn}: no listing at all ({kernel}, {policy})")
            continue
        found = ks.locate(Step("call", fn, line), kernel, policy, strict=True)
        if found is None:
            missing.append(f"{fn} [{chosen.kernel}] ({kernel}, {policy}): {line!r}")
        else:
            assert found[0] is chosen
    return missing


def test_every_step_line_is_in_the_listing_chosen_for_it(seen: Seen) -> None:
    missing = _unlisted(seen)
    assert not missing, "step lines with no listing line:\n" + "\n".join(missing)


def test_a_new_engine_line_or_function_is_reported() -> None:
    new_line = ("unmap_hotplug_pte_range", "pte_clear_fast(ptep)", "v5.7", "v5.7")
    new_fn = ("unmap_hotplug_p5d_range", "p5d = READ_ONCE(*p5dp)", "v5.7", "v5.7")
    # a line of the V7 listing only, under a v5.7 machine: in the wrong variant
    wrong = ("free_empty_tables", "free_empty_tables(0x1000, 0x2000)", "v5.7", "v5.7")
    seen = {key: Step("call", key[0], key[1]) for key in (new_line, new_fn, wrong)}
    assert len(_unlisted(seen)) == 3


def test_the_variant_follows_kernel_and_policy() -> None:
    """Where the kernel changed, the chosen listing is the one with that version's code
    (checked against the call order each version's mm/memory_hotplug.c has)."""

    def order(kernel: str) -> list[str]:
        lines = [ln.strip() for ln in ks.listing("try_remove_memory", kernel).lines]
        keys = (
            "memblock_remove",
            "remove_memory_block_devices",
            "arch_remove_memory",
            "mem_hotplug_begin",
        )
        return [k for ln in lines for k in keys if ln.startswith(k)]

    old = [
        "mem_hotplug_begin",
        "memblock_remove",
        "remove_memory_block_devices",
        "arch_remove_memory",
    ]
    assert order("v5.3") == order("v5.4") == old
    assert order("v5.5") == [
        "mem_hotplug_begin",
        "remove_memory_block_devices",
        "arch_remove_memory",
        "memblock_remove",
    ]
    assert (
        order("v5.7")
        == order("v6.1")
        == [
            "remove_memory_block_devices",
            "mem_hotplug_begin",
            "arch_remove_memory",
            "memblock_remove",
        ]
    )
    with_lock = ks.listing("ptdump_show", policy="v7")
    without = ks.listing("ptdump_show", policy="naive")
    assert any("get_online_mems" in ln for ln in with_lock.lines)
    assert not any("get_online_mems" in ln for ln in without.lines)
    assert "floor" in ks.listing("free_empty_tables", policy="v5.7").lines[0]
    assert "floor" not in ks.listing("free_empty_tables", policy="v7").lines[0]
    assert ks.listing("vmemmap_free", policy="v3").kernel == "patch V3"
    assert ks.listing("unmap_hotplug_pgd_range").function == "unmap_hotplug_range"
    # a policy object (a plugin's) is matched by its fields, not its name
    one_pass = HotplugPolicy("mine", "one pass", ("x",), passes=1, pgtable_lock=True)
    assert ks.listing("vmemmap_free", "v5.7", one_pass).kernel == "patch V3"
    tlbi = ks.listing("unmap_hotplug_pmd_range", policy=get_policy("v6"))
    assert any("addr, next" in ln for ln in tlbi.lines)


def test_locate_falls_back_to_another_variant_unless_strict() -> None:
    step = Step("call", "free_empty_tables", "free_empty_tables(0x1000, 0x2000)")
    assert ks.locate(step, "v5.7", "v5.7", strict=True) is None
    ls, i = ks.locate(step, "v5.7", "v5.7")
    assert ls.kernel == "patch V7" and i == 0
    assert ks.locate(Step("call", "no_such_function", "x"), "v5.7") is None
    assert ks.locate(Step("call", "remove_memory", "no such line")) is None


def test_every_listing_cites_file_and_version_and_fits_the_pane() -> None:
    for fn in ks.functions():
        for ls in ks.variants(fn):
            assert ls.file and ls.kernel and ls.note, ls.function
            assert ls.header == f"{ls.function}() \u2014 {ls.file}, {ls.kernel}"
            assert 4 <= len(ls.lines) <= 25, (ls.function, ls.kernel, len(ls.lines))
            for text in (ls.header, *ls.lines):
                assert len(text) <= ks.WIDTH, (ls.function, text)
                assert "@@" not in text, (ls.function, text)


def test_listing_html_escapes_and_highlights_exactly_one_line() -> None:
    ls = ks.listing("add_memory_resource", "v5.4")
    i = next(j for j, ln in enumerate(ls.lines) if "&" in ln or "<" in ln or '"' in ln)
    out = ks.listing_html(ls, i)
    assert out.startswith("<pre") and out.endswith("</pre>")
    assert "monospace" in out
    assert out.count('class="mmkit-current"') == 1
    current = re.search(r'class="mmkit-current"[^>]*>(.*?)</span>', out).group(1)
    assert html.unescape(current) == ls.lines[i]
    assert html.escape(ls.lines[i]) in out
    assert ls.lines[i] not in out or html.escape(ls.lines[i]) == ls.lines[i]
    assert html.escape(ls.header) in out
    assert ks.listing_html(ls, None).count("mmkit-current") == 0
    # a line with markup in it is shown as text, never as markup
    evil = ks.Listing("f", "v0", "x.c", ("<b>bold</b> & co", "b", "c", "d"), "n")
    shown = ks.listing_html(evil, 0)
    assert "<b>" not in shown and "&lt;b&gt;bold&lt;/b&gt; &amp; co" in shown
