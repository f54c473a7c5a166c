"""Lesson 07 (write your own policy): its checkers against the kernel facts, the claims its text
makes against the engine, and the notebook's shape.

The generic checks (every seed 0-49: right answer accepted, mistakes refused) are in
tests/test_exercises.py; here: what they cannot know. Ground truths: kernel-facts §7.2 (on the
v5.4 layouts no PTE or PMD table spans vmalloc and the vmemmap; the only shared tables are PUD
tables in 4K/48 and 16K/48, which also hold the fixmap's entry, so the race is latent there),
§6.3-6.4 (floor/ceiling frees only tables wholly inside the region) and §5 (patch 2/3's lock is
what keeps ptdump off freed tables).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from mmkit import arch, plugins, policies
from mmkit.exercises import by_lesson, get
from mmkit.exercises import lesson07 as l07
from mmkit.policies import HotplugPolicy
from tests.lesson_run import run_all_outputs

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "07-your-own-policy.ipynb"


def test_lesson_has_its_exercises() -> None:
    assert [e.id for e in by_lesson("07")] == ["07a", "07b", "07c"]


def test_each_decision_breaks_the_race_that_reads_it() -> None:
    """§5: without patch 2/3's lock ptdump reads freed tables; §6: freeing every empty vmemmap
    table races with vmalloc(); without a TLBI (or with V3's single pass, which frees before it
    clears) a CPU keeps a stale translation; a range flush and kept tables cost, not break."""
    expected = {
        ("ptdump_hotplug_lock", False): {"ptdump_race"},
        ("vmemmap_tables", "always"): {"vmalloc_race"},
        ("block_tlbi", "none"): {"tlb_order"},
        ("passes", 1): {"tlb_order"},
        ("block_tlbi", "range"): set(),
        ("vmemmap_tables", "never"): set(),
        ("pgtable_lock", True): set(),
    }
    assert set(expected) - {("ptdump_hotplug_lock", False)} == set(l07.FLIPS)
    for (field, value), races in expected.items():
        assert l07.failing_races(l07.flipped(field, value)) == races, (field, value)
    assert l07.failing_races(policies.get("v5.7")) == set()


def test_07a_a_range_flush_is_slower_not_wrong() -> None:
    ex = get("07a")
    v = ex.variant(l07.FLIPS.index(("block_tlbi", "range")))
    assert "slower, not wrong" in ex.check(v, ["tlb_order"]).message


def test_real_layouts_pin_or_do_not_share_the_vmalloc_table() -> None:
    """§7.2: only 4K/48 and 16K/48 share a table (a PUD table, with the fixmap in it)."""
    for real, _teach in l07.LatentRaceExercise.PAIRS:
        shared = arch.get(real).vmalloc_vmemmap_overlap.shared_tables
        if real in ("arm64-4k-48", "arm64-16k-48"):
            assert [t.level for t in shared] == ["pud"]
            assert "fixed mappings" in shared[0].regions
        else:
            assert shared == ()


@pytest.mark.parametrize("seed", [0, 3, 8])
def test_07c_unsafe_rules_fail_only_on_the_teaching_twin(seed: int) -> None:
    ex = get("07c")
    v = ex.variant(seed)
    right = ex.answer(v)
    if v.params["policy"] in ("naive", "v3"):
        assert right == f"only on {v.params['teach']}"
        assert "still unsafe" in ex.check(v, "on neither").message
    else:
        assert right == "on neither"


def _mine(**fields: object) -> HotplugPolicy:
    return HotplugPolicy("mine-test", "a test policy", ("mine",), **fields)  # type: ignore[arg-type]


def test_07b_accepts_floor_ceiling_by_name_once_registered() -> None:
    ex = get("07b")
    v = ex.variant(0)
    good = _mine(vmemmap_tables="floor-ceiling", linear_floor_ceiling=True, block_tlbi="single")
    with plugins.isolated():
        assert plugins.register("mmkit.policy", good.name, good).ok
        assert ex.check(v, good.name).correct
    assert ex.check(v, good).correct


def test_07b_refuses_the_leaky_the_racy_and_the_built_in() -> None:
    ex = get("07b")
    v = ex.variant(1)
    assert "leaks" in ex.check(v, _mine(vmemmap_tables="never")).message
    assert "looks empty" in ex.check(v, _mine(vmemmap_tables="always")).message
    assert "write your own" in ex.check(v, "v5.7").message
    with pytest.raises(Exception, match="register"):
        ex.parse(v, "no-such-policy")


# ----------------------------------------------------------------------- the notebook
def _cells() -> list:
    return nbformat.read(NOTEBOOK, as_version=4).cells


def test_notebook_shape() -> None:
    cells = _cells()
    text = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    assert "You will be able to" in text and "## Summary" in text
    assert "real kernel layouts" in text and "teaching" in text
    linked = set(re.findall(r"\]\(([\w-]+\.ipynb)\)", text))
    assert linked and all((NOTEBOOK.parent / name).is_file() for name in linked), linked
    anchors = set(re.findall(r'<a id="([^"]+)"', (NOTEBOOK.parent / "GLOSSARY.md").read_text()))
    used = set(re.findall(r"GLOSSARY\.md#([\w-]+)", text))
    assert used and used <= anchors, used - anchors
    sources = [c.source for c in cells if c.cell_type == "code"]
    for ex in by_lesson("07"):
        assert any(f'CheckWidget("{ex.id}")' in s for s in sources), ex.id
    assert not any("solution" in c.metadata.get("tags", []) for c in cells)
    # 07c's question comes before the cell that explores both layouts
    ask = next(i for i, s in enumerate(sources) if 'CheckWidget("07c")' in s)
    show = next(i for i, s in enumerate(sources) if 'for config in ("arm64-' in s)
    assert ask < show


def test_the_notebooks_starting_policy_is_not_an_answer() -> None:
    """Run All must not solve 07b: the template the learner starts from leaks like V6."""
    template = next(c.source for c in _cells() if c.source.startswith("mine = HotplugPolicy("))
    namespace: dict[str, object] = {"HotplugPolicy": HotplugPolicy}
    exec(template.split("report =")[0], namespace)  # the policy only, not its registration
    mine = namespace["mine"]
    ex = get("07b")
    for seed in range(len(l07.BuildPolicyExercise.CONFIGS)):
        assert not ex.check(ex.variant(seed), mine).correct


@pytest.mark.timeout(600)
def test_run_all_submits_nothing_and_shows_no_solution(tmp_path: Path) -> None:
    shown = run_all_outputs(NOTEBOOK, tmp_path, timeout=300)
    for ex in by_lesson("07"):
        v = ex.variant(0)
        assert ex.solution(v) not in shown, ex.id
    assert "Solution" not in shown and "✔" not in shown and "✘" not in shown
    assert "mmkit.policy:mine" in shown and ": ok" in shown
