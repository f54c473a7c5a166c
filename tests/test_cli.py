"""The ``mmkit`` command, run in-process and as a real console script."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys

import pytest

import mmkit.arch
from mmkit.arch.arm64 import CONFIGS
from mmkit.arch.teaching import CONFIGS as TEACHING
from mmkit.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_configs_table_lists_every_configuration(capsys):
    code, out, err = run(capsys, "configs")
    assert code == 0 and not err
    for name in mmkit.arch.names():
        assert name in out
    flagged = {line.split()[0] for line in out.splitlines()[1:] if line.rstrip().endswith("yes")}
    assert flagged & set(CONFIGS) == {"arm64-4k-48", "arm64-16k-48"}
    # the teaching layouts share a table between vmalloc and vmemmap by construction
    assert set(TEACHING) <= flagged


def test_configs_json_and_csv_agree_with_the_engine(capsys):
    _, out, _ = run(capsys, "configs", "--format", "json", "--kernel", "v5.3")
    rows = json.loads(out)
    assert [r["name"] for r in rows] == mmkit.arch.names()
    for r in rows:
        if r["name"] in CONFIGS:  # a plugin's family may not know kernel eras
            m = mmkit.arch.get(r["name"], kernel="v5.3").macros()
            assert int(r["VMALLOC_END"], 16) == m["VMALLOC_END"]
    _, out, _ = run(capsys, "configs", "--format", "csv")
    parsed = list(csv.DictReader(io.StringIO(out)))
    assert [r["name"] for r in parsed] == mmkit.arch.names()
    assert {r["name"] for r in parsed if r["v7_overlap"] == "True"} == {
        "arm64-4k-48",
        "arm64-16k-48",
        *TEACHING,
    }


def test_configs_with_kasan_reports_the_refused_configuration(capsys):
    code, out, _ = run(capsys, "configs", "--kasan", "generic")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("arm64-16k-48"))
    assert "KASAN is impossible" in row


def test_layout_prints_memory_rst_rows(capsys):
    code, out, _ = run(capsys, "layout", "arm64-4k-48", "--kasan", "generic")
    assert code == 0
    assert "fffffdfffe5f9000  fffffdfffe9fffff    4124KB  fixed mappings" in out
    assert "V7 overlap test" in out
    _, out, _ = run(capsys, "layout", "arm64-64k-48", "--format", "json")
    regions = json.loads(out)
    assert int(regions[-1]["end"], 16) == 1 << 64


def test_translate_shows_each_level(capsys):
    code, out, _ = run(capsys, "translate", "arm64-16k-48", "0xffff800000004000")
    assert code == 0
    lines = out.splitlines()
    assert "bpf jit region" in lines[0]  # PAGE_END is the BPF JIT start with KASAN off
    levels = [line.split()[0] for line in lines[2:6]]
    assert levels == ["pgd", "pud", "pmd", "pte"]
    pgd = lines[2].split()
    assert pgd[2] == "[47:47]" and pgd[3] == "0x1" and pgd[4] == "0x8"


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["layout", "arm64-4k-47"], "unknown configuration"),
        (["layout", "arm64-16k-48", "--kasan", "generic"], "16K/48"),
        (["translate", "arm64-4k-48", "0x1000"], "not a kernel address"),
        (["translate", "arm64-4k-48", "zz"], "not an integer"),
        (["layout", "arm64-4k-48", "--kernel", "v9"], "unknown kernel era"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_errors_are_one_line_and_nonzero(capsys, argv, fragment):
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse errors exit from inside parse_args
        code = exit_.code
    out, err = capsys.readouterr()
    assert code == 2
    assert fragment in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and not out


def test_console_script_is_installed_and_fails_cleanly():
    exe = shutil.which("mmkit") or str(
        pytest.importorskip("pathlib").Path(sys.executable).parent / "mmkit"
    )
    ok = subprocess.run(
        [exe, "configs", "--format", "json"], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0 and {r["name"] for r in json.loads(ok.stdout)} >= set(CONFIGS)
    bad = subprocess.run([exe, "layout", "no-such"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_decode_shows_every_field_of_a_section(capsys):
    # PROT_SECT_NORMAL 2 MiB block at PA 0x40000000, written out by hand:
    # valid(0) | AttrIndx=4 (bits 4:2) | SH=3 (9:8) | AF (10) | PA | PXN (53) | UXN (54)
    raw = 1 | (4 << 2) | (3 << 8) | (1 << 10) | 0x4000_0000 | (1 << 53) | (1 << 54)
    code, out, _ = run(capsys, "decode", "arm64-4k-48", hex(raw), "--level", "pmd")
    assert code == 0
    assert "L2: BLOCK" in out.splitlines()[0]
    assert "address 0x40000000" in out
    bits = [line.split()[0] for line in out.splitlines()[2:]]
    assert bits[0] == "[63]" and bits[-1] == "[0]"


def test_decode_rejects_a_level_the_configuration_does_not_walk(capsys):
    code, _, err = run(capsys, "decode", "arm64-64k-42", "0x3", "--level", "0")
    assert code == 2 and "starts at lookup level L2" in err


# ------------------------------------------------------------------ mmkit explore
NAIVE_PTDUMP = ("explore", "ptdump_race", "--config", "arm64-64k-42", "--policy", "naive")


def _line(out, prefix):
    return next(line for line in out.splitlines() if line.startswith(prefix))[len(prefix) :]


def test_explore_reports_a_failing_schedule_that_replays_to_the_use_after_free(capsys):
    from mmkit.scenarios.races import ptdump_race
    from mmkit.sched.explore import replay

    code, out, err = run(capsys, *NAIVE_PTDUMP, "--bound", "1")
    assert code == 0 and not err  # a failing schedule is a result, not an error
    assert out.splitlines()[0].startswith("ptdump_race('arm64-64k-42', 'naive'): ")
    assert "FAILS: shortest failing schedule" in out
    assert _line(out, "scenario: ") == "ptdump_race('arm64-64k-42', 'naive')"
    schedule = _line(out, "schedule: ")
    assert set(schedule.split()) == {"H", "P"}
    race = ptdump_race("arm64-64k-42", "naive")
    s = replay(race.make, schedule)
    uaf = [e for e in s.machine.events if e.kind == "use-after-free"]
    assert uaf and uaf[0].thread == "P"
    # the printed events are the replayed ones, and the hint is Python that replays them
    assert "  BUG: KASAN: use-after-free in walk_pte" in out.splitlines()
    namespace: dict[str, object] = {}
    exec(_line(out, "replay:   "), namespace)
    again = namespace["s"]
    assert [e.report() for e in again.machine.events] == [e.report() for e in s.machine.events]
    # per-thread steps are those of the default run: H to the end, then P
    default = race.scheduler()
    default.run()
    steps = {n: len(t.steps) for n, t in default.threads.items()}
    assert f"H       hot-remove  {steps['H']}" in out and f"P       ptdump      {steps['P']}" in out


def test_explore_finds_nothing_when_ptdump_takes_the_lock(capsys):
    code, out, err = run(
        capsys, "explore", "ptdump_race", "--config", "arm64-64k-42", "--policy", "v5.7",
        "--bound", "1",
    )  # fmt: skip
    assert code == 0 and not err
    assert "no failing schedule; bound 1:" in out
    assert "schedule: " not in out and "replay:" not in out


def test_explore_json_carries_the_result_fields(capsys):
    from mmkit.sched.explore import ExploreResult

    code, out, _ = run(capsys, *NAIVE_PTDUMP, "--bound", "1", "--json")
    data = json.loads(out)
    assert code == 0
    fields = {f.name for f in __import__("dataclasses").fields(ExploreResult)}
    assert set(data) == fields | {"scenario", "found"}
    assert data["scenario"] == "ptdump_race('arm64-64k-42', 'naive')"
    assert data["found"] is True and data["bound"] == 1 and data["complete"] is True
    assert data["failing"] >= 1 and data["events"][0].startswith("BUG: KASAN: use-after-free")
    assert set(data["shortest"].split()) == set(data["thread_steps"]) == {"H", "P"}


def test_explore_progress_goes_to_stderr_only_when_asked(capsys, monkeypatch):
    import re

    import mmkit.cli_explore

    monkeypatch.setattr(mmkit.cli_explore, "PROGRESS_SECONDS", 0.0)  # every callback prints
    argv = ("explore", "ptdump_race", "--config", "arm64-64k-42", "--policy", "v5.7")
    code, out, err = run(capsys, *argv, "--bound", "1", "--json", "--progress")
    assert code == 0
    lines = err.splitlines()
    pattern = re.compile(r"mmkit explore: (\d+) schedules, (\d+) states, (\d+) failing, [\d.]+ s")
    assert lines and all(pattern.fullmatch(line) for line in lines)
    data = json.loads(out)
    last = pattern.fullmatch(lines[-1])
    assert last and [int(g) for g in last.groups()] == [
        data["schedules"],
        data["states"],
        data["failing"],
    ]
    # captured stderr is no TTY: silent without --progress
    code, _, err = run(capsys, *argv, "--bound", "0")
    assert code == 0 and err == ""


def test_explore_progress_lines_are_rate_limited():
    from mmkit.cli_explore import progress_printer
    from mmkit.sched.explore import ExploreResult

    now = [100.0]
    stream = io.StringIO()
    report = progress_printer(stream, interval=0.5, clock=lambda: now[0])
    result = ExploreResult(1, 10, {"A": 2, "B": 3})
    for t in (100.1, 100.4, 100.6, 100.7, 101.0, 101.2):
        now[0] = t
        result.schedules += 1
        report(result)
    assert [line.split()[2] for line in stream.getvalue().splitlines()] == ["3", "6"]


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (
            ["explore", "no_such_race"],
            ["unknown race scenario 'no_such_race' (valid choices: ", "ptdump_race", "tlb_order"],
        ),
        (["explore", "ptdump_race", "--policy", "v9"], ["'v9' (valid choices: ", "naive", "v5.7"]),
        (
            ["explore", "tlb_order", "--config", "arm64-1k"],
            ["'arm64-1k' (valid choices: ", "64k-42"],
        ),
        (["explore", "ptdump_race", "--bound", "-1"], ["--bound", "below 0"]),
        (["explore", "ptdump_race", "--quiet", "--progress"], ["not allowed with"]),
    ],
)
def test_explore_bad_input_exits_2_with_the_choices(capsys, argv, fragments):
    with pytest.raises(SystemExit) as exc:  # argparse errors exit; engine errors return
        raise SystemExit(main(argv))
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and not out
    assert len(err.strip().splitlines()) == 1 and err.startswith("mmkit explore: error: ")
    for fragment in fragments:
        assert fragment in err


def test_explore_knows_every_scenario_function_and_nothing_else():
    from mmkit.cli_explore import race_names

    assert race_names() == ["ptdump_race", "tlb_order", "vmalloc_race"]


def test_replay_prints_each_step_and_the_kernel_log_as_it_grows(capsys):
    from mmkit.scenarios.races import vmalloc_race

    result = vmalloc_race("teach-64k-42", "naive").explore(bound=1)
    argv = ("replay", "vmalloc_race", result.shortest, "--config", "teach-64k-42")
    code, out, err = run(capsys, *argv, "--policy", "naive")
    assert code == 0 and not err
    lines = out.splitlines()
    steps = [line for line in lines if line.lstrip()[:1].isdigit()]
    assert [line.split()[1] for line in steps] == result.shortest.split()
    # the failure is printed under the step that recorded it: the last one
    assert lines[-2].endswith(result.events[0].splitlines()[0])
    assert lines[-2].lstrip().startswith("! ")
    assert lines[-1].startswith("then: H runnable; V ")
    # run on: H finishes; the log holds exactly the failure seen above
    code, out, _ = run(capsys, *argv, "--policy", "naive", "--run-on")
    assert code == 0 and out.splitlines()[-1] == "then: H done; V done"
    assert sum(line.lstrip().startswith("! ") for line in out.splitlines()) == 1


def test_replay_refuses_a_schedule_the_scenario_cannot_take(capsys):
    code, out, err = run(capsys, "replay", "ptdump_race", "P X", "--config", "arm64-64k-42")
    assert code == 2 and "no thread 'X'" in err and "choices: H, P" in err
    assert out.splitlines()[-1].startswith("1 P cpu1  ")  # what ran before the bad name


# ------------------------------------------------------------ addresses in JSON and CSV
def _engine_addresses(options: dict[str, object]) -> dict[str, set[int]]:
    """Every address and byte size the engine reports per configuration (the macros it
    shows in hex and the region bounds), for the configurations that accept ``options``."""
    out: dict[str, set[int]] = {}
    for name in mmkit.arch.names():
        try:
            d = mmkit.arch.get(name, **options)
        except mmkit.MmkitError:
            continue
        values = {int(v) for v in d.macros().values() if repr(v).startswith("0x")}
        values |= {r.start for r in d.regions} | {r.end for r in d.regions}
        out[name] = {v for v in values if v >= 10}  # below 10 hex and decimal agree
    return out


def _decimals(text: str) -> set[int]:
    import re

    return {int(t) for t in re.findall(r"(?<![\w.])\d+(?![\w.])", text)}


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_configs_json_and_csv_write_addresses_as_hex_strings(capsys, fmt):
    _, out, _ = run(capsys, "configs", "--format", fmt)
    rows = json.loads(out) if fmt == "json" else list(csv.DictReader(io.StringIO(out)))
    engine = {r["name"]: r for r in mmkit.arch.config_rows()}
    keys = ("PAGE_OFFSET", "VMALLOC_START", "VMALLOC_END", "VMEMMAP_START", "vmalloc_size")
    checked = 0
    for row in rows:
        for key in keys:
            if engine[row["name"]].get(key) is None:
                continue
            assert isinstance(row[key], str) and row[key].startswith("0x"), (row["name"], key)
            assert int(row[key], 16) == engine[row["name"]][key]
            checked += 1
    assert checked >= 5 * 8
    every = set().union(*_engine_addresses({}).values())
    assert not _decimals(out) & every, "an address printed in decimal"


@pytest.mark.parametrize("fmt", ["json", "csv"])
@pytest.mark.parametrize("name", ["arm64-4k-48", "arm64-64k-52"])
def test_layout_json_and_csv_write_region_bounds_as_hex(capsys, fmt, name):
    _, out, _ = run(capsys, "layout", name, "--format", fmt)
    rows = json.loads(out) if fmt == "json" else list(csv.DictReader(io.StringIO(out)))
    regions = mmkit.arch.get(name).regions
    assert len(rows) == len(regions)
    for row, region in zip(rows, regions, strict=True):
        assert row["name"] == region.name
        assert int(row["start"], 16) == region.start and row["start"].startswith("0x")
        assert int(row["end"], 16) == region.end and row["end"].startswith("0x")
        assert int(row["size"], 16) == region.end - region.start
    assert not _decimals(out) & _engine_addresses({})[name]


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_compare_json_and_csv_write_bytes_left_as_hex(capsys, fmt):
    from mmkit.mm.compare import compare_policies

    block = "0x400000000000"
    argv = ("compare", "arm64-4k-48", "--block", block, "--format", fmt)
    code, out, _ = run(capsys, *argv)
    assert code == 0
    rows = json.loads(out) if fmt == "json" else list(csv.DictReader(io.StringIO(out)))
    engine = {r.policy: r for r in compare_policies("arm64-4k-48", blocks=[int(block, 16)])}
    assert [r["policy"] for r in rows] == list(engine)
    assert any(r.bytes_left for r in engine.values())
    for row in rows:
        assert row["bytes_left"].startswith("0x")
        assert int(row["bytes_left"], 16) == engine[row["policy"]].bytes_left
        assert int(row["tables_left"]) == engine[row["policy"]].tables_left  # a count
    assert int(block, 16) not in _decimals(out)


def test_table_outputs_show_addresses_in_hex(capsys):
    _, out, _ = run(capsys, "configs")
    engine = {r["name"]: r for r in mmkit.arch.config_rows()}
    for line in out.splitlines()[1:]:
        name = line.split()[0]
        assert f"{engine[name]['VMALLOC_END']:#018x}" in line
    assert not _decimals(out) & set().union(*_engine_addresses({}).values())
    _, out, _ = run(capsys, "layout", "arm64-4k-48")
    assert not _decimals(out) & _engine_addresses({})["arm64-4k-48"]


def test_the_readme_replay_example_replays_a_real_failure(capsys) -> None:
    """The README's `mmkit replay` line is a schedule the explorer found: replayed, it
    ends in the kernel events the explorer reported."""
    import re
    import shlex
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    line = re.search(r"^mmkit replay .*?(?<!\\)$", readme.replace("\\\n", " "), re.M)
    assert line is not None, "no mmkit replay example in the README"
    args = shlex.split(line.group(0))[1:]
    assert "..." not in " ".join(args), "the README's schedule must be a real one"
    assert main(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"use-after-free|lost-mapping", out), out[-2000:]
