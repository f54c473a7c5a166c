"""The bad-input corpus of the ``mmkit`` command: every refusal is one line on stderr,
nothing on stdout, and a non-zero status: 2 for a bad argument (argparse's usage status, and
``EINVAL`` from the engine), the errno for other refusals, never 70 (an internal error)."""

from __future__ import annotations

import pytest

from mmkit.cli import main

BIG = "9" * 5000  # more digits than int() converts
CASES: list[tuple[list[str], int, str]] = [
    (["translate", "arm64-4k-48", BIG], 2, "5000 characters"),
    (["translate", "arm64-4k-48", "0x" + "f" * 17], 2, "not a 64-bit value"),
    (["translate", "arm64-4k-48", "-1"], 2, "not a 64-bit value"),
    (["translate", "arm64-4k-48", "0x1000"], 2, "not a kernel address"),
    (["translate", "arm64-4k-48", "1.5"], 2, "not an integer"),
    (["translate", "arm64-4k-48", ""], 2, "not an integer"),
    (["translate", "arm64-4k-48"], 2, "required"),
    (["translate", "nope", "0xffff000040000000"], 2, "unknown configuration"),
    (["translate", "x" * 3000, "0xffff000040000000"], 2, "unknown configuration"),
    (["translate", "日本", "0xffff000040000000"], 2, "unknown configuration"),
    (["configs", "--kernel", "v9.9"], 2, "unknown kernel era"),
    (["configs", "--kernel", ""], 2, "unknown kernel era"),
    (["configs", "--kernel", "v5.5"], 2, "unknown kernel era"),  # a hotplug era, not a layout
    (["configs", "--format", "xml"], 2, "invalid choice"),
    (["configs", "--vabits-actual", "0"], 2, "below 1"),
    (["configs", "--vabits-actual", "65"], 2, "above 64"),
    (["configs", "--pa-bits", "x"], 2, "not an integer"),
    (["configs", "--kasan", "hw"], 2, "invalid choice"),
    (["layout", "arm64-4k-48", "--kernel", "v9"], 2, "unknown kernel era"),
    (["layout", "arm64-16k-48", "--kasan", "generic"], 2, "16K/48"),
    (["layout", "arm64-4k-48", "--vabits-actual", "52"], 2, "vabits_actual"),
    (["layout", "arm64-4k-48", "--pa-bits", "52"], 2, "pa_bits"),
    (["layout"], 2, "required"),
    (["decode", "arm64-4k-48", "0x" + "1" * 17], 2, "not a 64-bit value"),
    (["decode", "arm64-4k-48", "0x3", "--level", "7"], 2, "level '7'"),
    (["decode", "arm64-4k-48", "0x3", "--level", "pgx"], 2, "level 'pgx'"),
    (["decode", "arm64-64k-42", "0x3", "--level", "0"], 2, "starts at lookup level L2"),
    (["compare", "arm64-4k-48"], 2, "required"),
    (["compare", "arm64-4k-48", "--block", "0x4000_0000"], 17, "overlaps"),  # EEXIST
    (["compare", "arm64-4k-48", "--block", "0x100000000", "--block", "0x100000000"], 17, ""),
    (["compare", "arm64-4k-48", "--block", "0x1234"], 2, "not aligned"),
    (["compare", "arm64-4k-48", "--block=-0x1"], 2, "not a 64-bit value"),
    (["compare", "arm64-4k-48", "--block", "0x100000000", "--kernel", "v9"], 2, "kernel era"),
    (["compare", "nope", "--block", "0x100000000"], 2, "unknown configuration"),
    (["plugins", "--format", "yaml"], 2, "invalid choice"),
    (["explore", "no_such_race"], 2, "unknown race scenario"),
    (["explore", "ptdump_race", "--bound", "-1"], 2, "below 0"),
    (["explore", "ptdump_race", "--max-schedules", "0"], 2, "below 1"),
    (["explore", "ptdump_race", "--bound", BIG], 2, "5000 characters"),
    (["explore", "ptdump_race", "--policy", "v9"], 2, "unknown hotplug policy"),
    (["explore", "tlb_order", "--config", "arm64-1k"], 2, "unknown configuration"),
    (["replay", "vmalloc_race", "V Q", "--config", "teach-64k-42"], 2, "no thread 'Q'"),
    (["replay", "nope", "H"], 2, "unknown race scenario"),
    (["lab", "--port", "0"], 2, "below 1"),
    (["lab", "--port", "70000"], 2, "above 65535"),
    (["bench", "--fast"], 2, "unrecognized arguments"),
    (["nonsense"], 2, "invalid choice"),
    ([], 2, "required"),
]


@pytest.mark.parametrize(
    ("argv", "status", "fragment"), CASES, ids=[" ".join(c[0])[:60] for c in CASES]
)
def test_bad_command_line_is_one_line_and_its_status(capsys, argv, status, fragment):
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse refuses from inside parse_args
        code = exit_.code
    out, err = capsys.readouterr()
    assert code == status != 70
    assert fragment in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) < 2000, err
    assert "Traceback" not in err
    assert not out or argv[0] == "replay"  # replay prints the steps taken before the bad one


def test_the_status_is_the_errno_for_refusals_other_than_bad_arguments():
    from mmkit.cli import exit_status
    from mmkit.errors import Busy, Exists, InvalidArgument, NoMemory, NotFound, UnknownName

    assert [exit_status(e("x")) for e in (InvalidArgument, UnknownName)] == [2, 2]
    assert [exit_status(e("x")) for e in (NotFound, Busy, Exists, NoMemory)] == [2, 16, 17, 12]


def test_main_refuses_arguments_that_are_not_strings(capsys):
    assert main(["translate", "arm64-4k-48", 42]) == 2  # type: ignore[list-item]
    assert main("translate arm64-4k-48 0x0") == 2  # type: ignore[arg-type]
    _, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 2
