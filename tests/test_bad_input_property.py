"""Generated malformed calls against the public API: wrong types, boundary integers, huge
and negative values, unicode names. Whatever is drawn, a call either works or raises an
:class:`~mmkit.errors.MmkitError` and leaves the machine as it was; nothing else escapes."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import mmkit
from mmkit.errors import MmkitError
from mmkit.machine import Machine
from mmkit.mm.ptdump import parse_ptdump
from mmkit.scenarios.races import vmalloc_race

BOUNDARY = [0, 1, -1, 4095, 4096, (1 << 30) - 1, 1 << 30, (1 << 48) - 1, 1 << 48]
BOUNDARY += [(1 << 63) - 1, 1 << 63, (1 << 64) - 1, 1 << 64, -(1 << 64), 1 << 4000]
BOUNDARY += [0xFFFF_0000_4000_0000, 0xFFFF_FFFF_FFFF_F000, 0x4000_0000, 0x1_0000_0000]

#: anything a caller might pass by mistake
values = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(BOUNDARY),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.tuples(st.integers(), st.integers()),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)

BASE = Machine("arm64-4k-48", vmalloc_areas=1, online_type="offline")
BASE.add_memory(0, 0xC000_0000, 1 << 30)
RACE = vmalloc_race("teach-64k-42", "v5.7")
MACHINE_KEYWORDS = ["policy", "rodata_full", "cpus", "vmalloc_areas", "online_type", "kernel"]
MACHINE_KEYWORDS += ["kasan", "vabits_actual", "pa_bits", "kpti", "unmap_kernel_at_el0"]


def on_machine(method: str, arity: int) -> Callable[[Machine, list[Any]], Any]:
    def call(m: Machine, args: list[Any]) -> Any:
        result = getattr(m, method)(*args[:arity])
        if method.startswith("arch_"):
            m.run(result)
        return result

    return call


CALLS: dict[str, Callable[[Machine, list[Any]], Any]] = {
    f"{name}/{n}": on_machine(name, n)
    for name, n in [
        ("hot_add", 2),
        ("hot_remove", 2),
        ("arch_add_memory", 2),
        ("arch_remove_memory", 2),
        ("add_memory", 3),
        ("remove_memory", 2),
        ("online_block", 1),
        ("online_block", 2),
        ("offline_block", 1),
        ("access", 1),
        ("access", 2),
        ("run", 1),
        ("lm_va", 1),
        ("vmemmap_va", 1),
        ("block_of", 1),
        ("pfn_valid", 1),
    ]
}
CALLS["Machine(arch)"] = lambda m, a: Machine(a[0])
CALLS["Machine(memory)"] = lambda m, a: Machine(memory=a[0])
CALLS["Machine(memory=[(a, b)])"] = lambda m, a: Machine(memory=[(a[0], a[1])])
CALLS["arch.get(name)"] = lambda m, a: mmkit.arch.get(a[0])
CALLS["parse_ptdump"] = lambda m, a: parse_ptdump(a[0])
CALLS["desc.indices"] = lambda m, a: m.desc.indices(a[0])
CALLS["desc.region_of"] = lambda m, a: m.desc.region_of(a[0])
for keyword in MACHINE_KEYWORDS:
    CALLS[f"Machine({keyword})"] = lambda m, a, k=keyword: Machine(**{k: a[0]})
    CALLS[f"arch.get({keyword})"] = lambda m, a, k=keyword: mmkit.arch.get(
        "arm64-64k-52", **{k: a[0]}
    )


@settings(max_examples=max(200, 4 * settings().max_examples), deadline=None)
@given(name=st.sampled_from(sorted(CALLS)), args=st.lists(values, min_size=3, max_size=3))
def test_a_malformed_call_raises_a_typed_error_and_changes_nothing(name, args):
    m = copy.deepcopy(BASE)
    before = m.digest()
    try:
        CALLS[name](m, args)
    except MmkitError as err:
        assert m.digest() == before, (name, args)
        assert str(err) and "\n" not in str(err)


@settings(max_examples=max(50, settings().max_examples), deadline=None)
@given(
    keyword=st.text(min_size=1, max_size=10).filter(str.isidentifier),
    value=values,
)
def test_an_unknown_keyword_with_a_unicode_name_is_refused(keyword, value):
    with contextlib.suppress(MmkitError):  # the only error allowed out
        Machine(**{keyword: value})


@settings(max_examples=max(100, settings().max_examples), deadline=None)
@given(schedule=st.one_of(values, st.lists(st.one_of(st.sampled_from("VH"), values), max_size=6)))
def test_a_malformed_schedule_takes_no_step(schedule):
    s = RACE.scheduler()
    before = (list(s.schedule), s.machine.digest())
    try:
        s.follow(schedule)
    except MmkitError:
        assert (list(s.schedule), s.machine.digest()) == before
