"""The ``mmkit`` command: configurations, layouts, walks, descriptors, plugins, races, the lab.

Every subcommand reads the engine and prints text (or JSON/CSV); errors are one line on
stderr and a non-zero exit, never a traceback (set ``MMKIT_DEBUG=1`` to see one). In every
output, addresses and byte sizes are hex (``"0xfffffdffbfff0000"`` in JSON and CSV, which
``int(x, 16)`` reads back); shifts, levels and counts are decimal.

>>> main(["translate", "arm64-4k-48", "0xffff000040000000"])  # doctest: +NORMALIZE_WHITESPACE
arm64-4k-48 (v5.4): VA 0xffff000040000000 in kernel logical memory map
level  lookup  VA bits  index  entry offset
pgd    L0      [47:39]  0x0    0x0
pud    L1      [38:30]  0x1    0x8
pmd    L2      [29:21]  0x0    0x0
pte    L3      [20:12]  0x0    0x0
page offset [11:0] = 0x0
0
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from mmkit import cli_explore
from mmkit.errors import InvalidArgument, MmkitError

__all__ = ["main"]

#: Keys of ``configs`` rows holding an address or a byte size: hex strings in JSON and CSV.
_CONFIG_HEX_KEYS = frozenset(
    {
        "PAGE_OFFSET",
        "VMALLOC_START",
        "VMALLOC_END",
        "VMEMMAP_START",
        "page_size",
        "vmalloc_size",
        "vmemmap_size",
        "memory_block_size",
    }
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _shown(text: str) -> str:
    """An argument as an error message echoes it: cut short when long."""
    return repr(text) if len(text) <= 40 else f"{text[:24]!r}...({len(text)} characters)"


def _int(text: str) -> int:
    try:
        return int(text.replace("_", ""), 0)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{_shown(text)} is not an integer (write hex as 0x..., e.g. 0xffff000040000000)"
        ) from None


def _address(text: str) -> int:
    """A 64-bit address or descriptor: an integer from 0 to 2**64 - 1."""
    value = _int(text)
    if not 0 <= value < 1 << 64:
        raise argparse.ArgumentTypeError(
            f"{_shown(text)} is not a 64-bit value: give 0x0 to 0xffffffffffffffff"
        )
    return value


def _era(choices: Sequence[str]) -> Callable[[str], str]:
    """A kernel era among ``choices``, checked before anything runs."""

    def parse(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(
                f"unknown kernel era {_shown(text)} (valid choices: {', '.join(choices)})"
            )
        return text

    return parse


def _at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = _int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{_shown(text)} is below {minimum}; give {minimum} or more"
            )
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(
                f"{_shown(text)} is above {maximum}; give {maximum} or less"
            )
        return value

    return parse


def _add_config_options(p: argparse.ArgumentParser, *, hotplug: bool = False) -> None:
    from mmkit.arch import KERNEL_ERAS
    from mmkit.mm.hotplug import HOTPLUG_KERNELS

    eras = HOTPLUG_KERNELS if hotplug else KERNEL_ERAS
    p.add_argument(
        "--kernel",
        type=_era(eras),
        default=None,
        help=f"kernel era: {', '.join(eras)} (default: v5.4)",
    )
    p.add_argument("--kasan", default=None, choices=["generic", "sw_tags"], help="KASAN mode")
    p.add_argument(
        "--vabits-actual", type=_at_least(1, 64), default=None, help="hardware VA bits (52-bit)"
    )
    p.add_argument(
        "--pa-bits", type=_at_least(1, 64), default=None, help="CONFIG_ARM64_PA_BITS (48, 52)"
    )
    for flag, what in (
        ("ghes", "ACPI_APEI_GHES"),
        ("sdei", "ARM_SDE_INTERFACE"),
        ("kpti", "UNMAP_KERNEL_AT_EL0"),
        ("relocatable", "RELOCATABLE"),
    ):
        p.add_argument(
            f"--{flag}",
            action=argparse.BooleanOptionalAction,
            default=None,
            help=f"CONFIG_{what} (sizes the fixmap; default as Machine: the arch's default)",
        )


def _options(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("kernel", "kasan", "vabits_actual", "pa_bits", "ghes", "sdei", "kpti", "relocatable")
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _hex_keys(rows: list[dict[str, Any]], keys: frozenset[str]) -> list[dict[str, Any]]:
    """``rows`` with the int values under ``keys`` as ``"0x..."`` strings."""
    return [
        {
            k: f"{v:#x}" if k in keys and isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in row.items()
        }
        for row in rows
    ]


def _emit(
    rows: list[dict[str, Any]], fmt: str, text: str, hex_keys: frozenset[str] = frozenset()
) -> None:
    """Print ``text`` for a table, else ``rows`` as JSON or CSV with ``hex_keys`` in hex."""
    rows = _hex_keys(rows, hex_keys)
    if fmt == "json":
        print(json.dumps(rows, indent=2))
    elif fmt == "csv":
        out = io.StringIO()
        keys: list[str] = []
        for row in rows:
            keys.extend(k for k in row if k not in keys)
        writer = csv.DictWriter(out, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        print(out.getvalue(), end="")
    else:
        print(text)


def _show(value: object) -> str:
    return "-" if value is None else str(value)


def _cmd_configs(args: argparse.Namespace) -> int:
    import mmkit.arch
    from mmkit.arch import format_size

    rows = mmkit.arch.config_rows(**_options(args))
    text_rows = []
    for r in rows:
        if "error" in r:
            text_rows.append([r["name"], "-", "-", "-", "-", "-", "-", "-", "-", r["error"]])
            continue
        block = r["memory_block_size"]
        overlap = r["v7_overlap"]
        text_rows.append(
            [
                str(r["name"]),
                format_size(int(r["page_size"])),  # type: ignore[call-overload]
                _show(r["va_bits"]),
                _show(r["levels"]),
                _show(r["folded"]),
                _show(r["PGDIR_SHIFT"]),
                _show(r["PTRS_PER_PGD"]),
                f"{int(r['VMALLOC_END']):#018x}",  # type: ignore[call-overload]
                format_size(int(block)) if block is not None else "-",  # type: ignore[call-overload]
                "-" if overlap is None else "yes" if overlap else "no",
            ]
        )
    header = [
        "config",
        "page",
        "VA",
        "levels",
        "folded",
        "PGDIR_SHIFT",
        "PTRS_PER_PGD",
        "VMALLOC_END",
        "block",
        "V7 overlap",
    ]
    _emit(rows, args.format, _table(text_rows, header), _CONFIG_HEX_KEYS)
    return 0


def _cmd_layout(args: argparse.Namespace) -> int:
    import mmkit.arch
    from mmkit.arch import format_size

    d = mmkit.arch.get(args.name, **_options(args))
    rows = [
        {"start": r.start, "end": r.end, "size": r.size, "name": r.name, "kind": r.kind}
        for r in d.regions
    ]
    text = [f"{r.start:016x}  {r.last:016x}  {format_size(r.size):>8}  {r.name}" for r in d.regions]
    title = f"{d.name} ({getattr(d, 'kernel', '?')}) virtual memory layout"
    header = f"{'Start':<16}  {'End':<16}  {'Size':>8}  Use"
    ov = getattr(d, "vmalloc_vmemmap_overlap", None)
    tail = [] if ov is None else ["", "V7 overlap test: " + ov.explain()]
    text_out = "\n".join([title, "", header, "-" * 60, *text, *tail])
    _emit(rows, args.format, text_out, frozenset({"start", "end", "size"}))
    return 0


def _cmd_translate(args: argparse.Namespace) -> int:
    import mmkit.arch

    d = mmkit.arch.get(args.name, **_options(args))
    steps = d.indices(args.va)
    region = d.region_of(args.va)
    rows = []
    for level, index in steps:
        hi, lo = level.index_bits
        rows.append([level.name, f"L{level.hw_level}", f"[{hi}:{lo}]", hex(index), hex(index * 8)])
    print(f"{d.name} ({d.kernel}): VA {args.va:#018x} in {region.name}")
    print(_table(rows, ["level", "lookup", "VA bits", "index", "entry offset"]))
    print(f"page offset [{d.page_shift - 1}:0] = {args.va & (d.page_size - 1):#x}")
    return 0


def _level_number(text: str) -> int:
    names = {"l0": 0, "l1": 1, "l2": 2, "l3": 3}
    key = text.lower()
    if key in names:
        return names[key]
    if key.isdigit() and int(key) in range(4):
        return int(key)
    if key in ("pgd", "pud", "pmd", "pte"):
        return -["pgd", "pud", "pmd", "pte"].index(key) - 1  # resolved per configuration
    raise argparse.ArgumentTypeError(
        f"level {text!r}: use a lookup level 0-3 (L0..L3) or pgd, pud, pmd, pte"
    )


def _cmd_decode(args: argparse.Namespace) -> int:
    import mmkit.arch
    from mmkit.arch import pte

    d = mmkit.arch.get(args.name, **_options(args))
    level = args.level
    if level < 0:
        name = ["pgd", "pud", "pmd", "pte"][-level - 1]
        info = next(lv for lv in d.level_info if lv.name == name)
        level = info.hw_level
    if level < 4 - d.levels:
        raise InvalidArgument(
            f"{d.name} has {d.levels} levels: its walk starts at lookup level L{4 - d.levels}, "
            f"not L{level}"
        )
    block_levels = frozenset(lv.hw_level for lv in d.geometry.levels_used if lv.hw_block)
    desc = pte.decode(
        args.descriptor,
        level,
        page_shift=d.page_shift,
        pa_bits=d.pa_bits,
        block_levels=block_levels,
    )
    print(f"{d.name}: {args.descriptor:#018x} at lookup level L{level}: {desc.kind.name}")
    rows = [[f.bits, f.name, hex(f.value), f.meaning] for f in reversed(desc.fields())]
    print(_table(rows, ["bits", "field", "value", "meaning"]))
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    from mmkit import plugins

    reports = plugins.reports()
    if args.format == "json":
        print(json.dumps([r.as_dict() for r in reports], indent=2))
    else:
        print(plugins.format_reports(reports))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from mmkit import arch
    from mmkit.mm.compare import compare_policies
    from mmkit.pgtable.tlb import TLBI_NAMES, tlbi_names_of

    rows = compare_policies(
        args.name, blocks=args.block, rodata_full=args.rodata_full, **_options(args)
    )
    data = [vars(r) | {"events": list(r.events)} for r in rows]
    text_rows = [
        [
            r.policy,
            str(r.tables_allocated),
            str(r.tables_freed),
            str(r.tables_left),
            ", ".join(f"{k}:{v}" for k, v in r.left_by_level_region.items()) or "-",
            *(str(r.tlbi[kind]) for kind in TLBI_NAMES),
            str(len(r.events)),
        ]
        for r in rows
    ]
    names = tlbi_names_of(arch.get(args.name))  # what this architecture's kernel does
    header = ["policy", "allocated", "freed", "left", "left by level/region", *names.values()]
    header.append("events")
    _emit(data, args.format, _table(text_rows, header), frozenset({"bytes_left"}))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from mmkit import bench

    print(bench.format_results(bench.run_bench(quick=args.quick), as_json=args.json))
    return 0


def _cmd_lab(args: argparse.Namespace) -> int:
    from mmkit import lab

    return lab.run_lab(args.workspace, port=args.port, ip=args.ip, open_browser=not args.no_browser)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mmkit", description="Learn how Linux arm64 gives memory back.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser("configs", help="all configurations with geometry and the V7 overlap")
    _add_config_options(c)
    c.add_argument("--format", choices=["table", "json", "csv"], default="table")
    c.set_defaults(func=_cmd_configs)

    c = sub.add_parser("layout", help="the kernel VA layout, as memory.rst tables it")
    c.add_argument("name")
    _add_config_options(c)
    c.add_argument("--format", choices=["table", "json", "csv"], default="table")
    c.set_defaults(func=_cmd_layout)

    c = sub.add_parser("translate", help="table index and entry offset of a VA at each level")
    c.add_argument("name")
    c.add_argument("va", type=_address)
    _add_config_options(c)
    c.set_defaults(func=_cmd_translate)

    c = sub.add_parser("decode", help="decode an arm64 descriptor bit by bit")
    c.add_argument("name")
    c.add_argument("descriptor", type=_address)
    c.add_argument(
        "--level",
        type=_level_number,
        default=3,
        help="lookup level 0-3 or pgd/pud/pmd/pte (default: 3, a page)",
    )
    _add_config_options(c)
    c.set_defaults(func=_cmd_decode)

    c = sub.add_parser("plugins", help="status of every architecture and policy plugin")
    c.add_argument("--format", choices=["table", "json"], default="table")
    c.set_defaults(func=_cmd_plugins)

    c = sub.add_parser("compare", help="one hot-add/remove scenario under every policy")
    c.add_argument("name")
    c.add_argument(
        "--block",
        type=_address,
        action="append",
        required=True,
        help="PA of a memory block to add then remove (repeatable)",
    )
    c.add_argument("--rodata-full", action="store_true", help="map without blocks")
    _add_config_options(c, hotplug=True)
    c.add_argument("--format", choices=["table", "json", "csv"], default="table")
    c.set_defaults(func=_cmd_compare)

    c = sub.add_parser("bench", help="speed figures of this machine (one run, named results)")
    c.add_argument("--json", action="store_true", help="JSON with stable snake_case keys")
    c.add_argument("--quick", action="store_true", help="skip the 16 GiB case")
    c.set_defaults(func=_cmd_bench)

    cli_explore.add_parser(sub, _at_least)

    c = sub.add_parser(
        "lab",
        help="copy the lessons into your workspace and start JupyterLab there",
        description=(
            "Copy the lessons into a workspace of your own (first run; later runs add new "
            "lessons and never overwrite a file you changed: the new version goes beside it "
            "as NAME.new.ipynb), then start JupyterLab there on lesson 00. The server keeps "
            "this terminal: stop it with Ctrl-C twice, or `jupyter server stop`. It listens on "
            "loopback with a token. For a remote machine, keep loopback and tunnel: "
            "`ssh -L 8888:127.0.0.1:8888 user@host`, then `mmkit lab --no-browser --port 8888` "
            "there, and open the printed URL here; never --ip 0.0.0.0 without a token."
        ),
    )
    c.add_argument(
        "--workspace",
        default=None,
        metavar="DIR",
        help="your copy of the lessons (default: $MMKIT_WORKSPACE or ~/mmkit-lessons; "
        "never inside a git clone or the installed package)",
    )
    c.add_argument("--ip", default="127.0.0.1", help="address to listen on (default: loopback)")
    c.add_argument(
        "--port", type=_at_least(1, 65535), default=None, help="port (default: 8888 or next free)"
    )
    c.add_argument("--no-browser", action="store_true", help="do not open a browser")
    c.set_defaults(func=_cmd_lab)
    return p


def exit_status(err: MmkitError) -> int:
    """The exit status of a refused command: 2 (a usage error, as argparse's) for a bad
    argument (``EINVAL``), else the kernel errno (``ENOENT`` 2, ``EEXIST`` 17, ``EBUSY`` 16,
    ``ENOMEM`` 12, ``EPERM`` 1, ``ENOEXEC`` 8 for a plugin)."""
    return 2 if isinstance(err, InvalidArgument) else err.errno


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mmkit`` command; returns the exit status (see :func:`exit_status`; 70, an
    internal error, only for a bug in mmkit)."""
    if argv is not None and (isinstance(argv, str) or not all(isinstance(a, str) for a in argv)):
        print(
            f"mmkit: error: arguments must be a list of strings, not {argv!r:.60}", file=sys.stderr
        )
        return 2
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except MmkitError as err:
        message = " ".join(str(err).split())  # one line
        print(f"mmkit {args.command}: error: {message}", file=sys.stderr)
        return exit_status(err)
    except BrokenPipeError:
        return 0
    except Exception as err:  # a bug in mmkit: one line unless asked for the traceback
        if os.environ.get("MMKIT_DEBUG"):
            raise
        print(
            f"mmkit {args.command}: internal error: {type(err).__name__}: {err} "
            "(set MMKIT_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return 70


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
