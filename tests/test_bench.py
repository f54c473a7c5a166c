"""``mmkit bench`` runs and reports named figures (no timing is asserted here)."""

from __future__ import annotations

import json

from mmkit.cli import main


def test_bench_quick_json_has_stable_keys(capsys):
    assert main(["bench", "--quick", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    for key in (
        "import_mmkit_ms",
        "hotplug_1g_rodata_full_s",
        "numpy_floor_1g_s",
        "hotplug_1g_floor_ratio",
        "hotplug_1g_peak_mib",
        "hotplug_1g_peak_rss_mib",
        "hotplug_1g_floor_ratio_median",
        "hotplug_1g_warm_floor_ratio",
        "hotplug_4g_rodata_full_s",
        "hotplug_4g_ms_per_gib",
        "hotplug_4g_per_gib_vs_1g_ratio",
        "explore_peak_rss_mib",
        "explore_ptdump_4k_48_naive_bound2_s",
        "explore_lesson_races_slowest_s",
        "explore_states_per_s",
        "explore_lesson04_fine_races_slowest_s",
        "tree_1g_page_granular_nodes",
        "tree_1g_page_granular_build_ms",
        "stepper_1g_rodata_full_steps",
        "stepper_step_ms_p50",
        "stepper_step_ms_p95",
        "lessons_executed",
        "lessons_total_s",
        "lesson_kernel_peak_mib",
    ):
        assert key in figures and figures[key] > 0
    assert all(k == k.lower() and " " not in k for k in figures)
    assert figures["stepper_step_ms_p50"] <= figures["stepper_step_ms_p95"]
    ratio = figures["hotplug_1g_floor_ratio"]
    assert abs(ratio - figures["hotplug_1g_rodata_full_s"] / figures["numpy_floor_1g_s"]) < (
        0.01 * ratio
    )
    # the best cycle is no slower than the median one; per GiB is the cycle over its size
    assert figures["hotplug_1g_rodata_full_s"] <= figures["hotplug_1g_rodata_full_median_s"]
    per_gib = figures["hotplug_4g_rodata_full_s"] / 4 * 1e3
    assert abs(figures["hotplug_4g_ms_per_gib"] - per_gib) < 0.01 * per_gib
    growth = figures["hotplug_4g_ms_per_gib"] / figures["hotplug_1g_ms_per_gib"]
    assert abs(figures["hotplug_4g_per_gib_vs_1g_ratio"] - growth) < 0.01 * growth
