"""What a hotplug policy decides, and the rule that says what it decides over.

**Policy versus kernel era.** A :class:`~mmkit.machine.Machine` runs two pieces of code:

* the **kernel era** (``Machine(kernel="v5.3" | "v5.4" | "v5.5" | "v5.7" | "v6.1")``) is the
  generic kernel the series was applied to: the VA layout (``asm/memory.h``), the generic
  hotplug flow (``try_remove_memory()``'s call order and locks, ``mm/memory_hotplug.c``),
  ``drivers/base/node.c``'s unlinking, ``pfn_valid()`` and the ptdump walker and its format;
* the **policy** is the arm64 hot-remove series as one of its versions wrote it: every field
  below is a choice some version of the series made, and **a policy field always wins over
  the era**. Each field is read in exactly one place, named beside it.

One field may leave the choice to the era: ``memblock_after_arch_remove=None`` means "no
patch 1/3 in this series; ``try_remove_memory()`` runs in the era's own order" (v5.3 and
v5.4 free and remove the memblock ranges before the memory block devices, v5.5 on after
``arch_remove_memory()``, commit 32d1fe8fcb32). The merged ``v5.7`` policy says None: V8
dropped patch 1/3 from the series because it was merged on its own for v5.5. ``True`` (the
series up to V7 carried patch 1/3) and ``False`` (the pre-patch order, the ``naive``
strawman) apply on every era. Where an era's code already has what a field adds (v5.7's
``ptdump_show()`` takes ``get_online_mems()``, v5.7's ``prevent_bootmem_remove_notifier``),
the policy still decides: a policy that says no lock runs the era's code without it.

The fields (:data:`DECISIONS` lists them with their allowed values; the plugin loader checks
a policy plugin against exactly that list):

* ``passes`` (:mod:`mmkit.pgtable.arch_hotplug`): 1 = V3's ``remove_pagetable`` (one walk:
  free tables as the walk returns from them; a mapped page or block freed *before* its entry
  is cleared), 2 = V6 on (``unmap_hotplug_range`` then ``free_empty_tables``).
* ``pgtable_lock`` (:mod:`mmkit.pgtable.arch_hotplug`): hold ``init_mm.page_table_lock``
  around each teardown walk (V3-V5; V6 dropped it).
* ``vmemmap_tables`` (:mod:`mmkit.pgtable.arch_hotplug`): when ``vmemmap_free()`` frees empty
  table pages: ``always`` (naive, V3), ``never`` (V6), ``no-overlap`` (V7: unless vmalloc and
  vmemmap share a PGD entry), ``floor-ceiling`` (V8 on: only tables wholly inside
  [VMEMMAP_START, VMEMMAP_END)).
* ``linear_floor_ceiling`` (:mod:`mmkit.pgtable.arch_hotplug`): the linear map's tables are
  freed only if wholly inside [PAGE_OFFSET, PAGE_END) (V8 on).
* ``block_tlbi`` (:mod:`mmkit.pgtable.unmap`, :mod:`mmkit.pgtable.remove_pagetable`): what
  invalidates a cleared block entry: ``none`` (V3-V5), ``flush_tlb_kernel_range(addr, next)``
  (``range``, V6-V9) or one TLBI (``single``, V10 on).
* ``ptdump_hotplug_lock`` (:mod:`mmkit.mm.ptdump_debugfs`): ptdump takes
  ``get_online_mems()`` (patch 2/3, V3 on; merged for v5.7).
* ``memblock_after_arch_remove`` (:mod:`mmkit.mm.hotplug`): patch 1/3's order, or None (above).
* ``boot_memory_notifier`` (:mod:`mmkit.mm.hotplug`): ``prevent_bootmem_remove_notifier``
  refuses to offline an early section (V12 on, v5.7). Without it, a boot block that holds no
  boot allocation can be offlined and removed, and the teardown meets boot-allocated pages.

**The contract.** :class:`PolicyLike` is everything the engine reads on a policy: the
metadata (``api_version``, ``name``, ``description``, ``kernel_versions``) and the
:data:`DECISIONS`. Nothing else is required: the derived rule :func:`frees_vmemmap_tables`
is a function of ``vmemmap_tables`` here, not a method a plugin must carry. A policy may
also define any of the :data:`OPTIONAL_HOOKS`; an absent hook means the engine's default
behaviour (named beside each hook). The engine calls a hook only through
:func:`call_hook`, which turns anything the plugin's code raises (``SystemExit`` too) into
a :class:`~mmkit.errors.PluginError` naming the policy, so a broken hook stops the one
operation, never the kit.

>>> sorted(DECISIONS)[:3]
['block_tlbi', 'boot_memory_notifier', 'linear_floor_ceiling']
>>> HotplugPolicy("x", "x", ("V6",), block_tlbi="both")
Traceback (most recent call last):
...
mmkit.errors.InvalidArgument: policy 'x': block_tlbi is 'both'; expected one of 'none', \
'range', 'single'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, runtime_checkable

from mmkit.errors import InvalidArgument, MmkitError, PluginError
from mmkit.plugins._contracts import PolicyPlugin

__all__ = [
    "DATA_HOOKS",
    "DECISIONS",
    "OPTIONAL_HOOKS",
    "HotplugPolicy",
    "PolicyLike",
    "call_hook",
    "check_decisions",
    "check_hooks",
    "frees_vmemmap_tables",
    "hook",
]

VmemmapTables = Literal["always", "never", "no-overlap", "floor-ceiling"]
BlockTlbi = Literal["none", "range", "single"]

#: Every decision field the engine reads, with the values it accepts.
DECISIONS: Final[dict[str, tuple[Any, ...]]] = {
    "passes": (1, 2),
    "pgtable_lock": (False, True),
    "vmemmap_tables": ("always", "never", "no-overlap", "floor-ceiling"),
    "linear_floor_ceiling": (False, True),
    "block_tlbi": ("none", "range", "single"),
    "ptdump_hotplug_lock": (False, True),
    "memblock_after_arch_remove": (None, False, True),
    "boot_memory_notifier": (False, True),
}


#: Hooks a policy may define, each ``name -> signature: meaning (default when absent)``.
#: The engine reads each in one place, through :func:`call_hook`.
OPTIONAL_HOOKS: Final[dict[str, str]] = {
    "keep_table": (
        "keep_table(machine, level: str, start: int, end: int) -> str | None: called by "
        "mmkit.pgtable.keep (from try_free_table) when an empty table page of `level` "
        "spanning [start, end) is about to be unhooked from its parent, atomically with the "
        "clear; a non-empty string keeps the table (the reason is shown on the step), None "
        "lets it go (default: every empty table the other decisions allow is freed)"
    ),
    "defer_table_free": (
        "defer_table_free(machine, level: str, va: int, pfn: int) -> bool: called by "
        "mmkit.pgtable.keep once an empty table page is unhooked and its TLB entries "
        "invalidated; True leaves the page allocated, for the policy to free later (RCU-style) "
        "(default: the page is freed at once)"
    ),
    "arch_remove_memory": (
        "arch_remove_memory(machine, start: int, size: int) -> Iterator[Step]: the whole "
        "page-table side of hot-remove for [start, start + size), run by "
        "mmkit.pgtable.arch_hotplug.arch_remove_memory, which still does the bookkeeping "
        "(another architecture's teardown, e.g. x86's single-pass remove_pagetable(); "
        "default: arm64's vmemmap_free() per section, then __remove_pgd_mapping(), as the "
        "decisions above choose)"
    ),
    "listings": (
        "listings: Sequence[mmkit.kernel_source.Listing]: pseudo-source of the functions "
        "the policy's own code steps through, built with mmkit.kernel_source.source; read by "
        "mmkit.kernel_source.listing, before mmkit's own (default: mmkit's listings)"
    ),
}


#: The optional hooks that are data, not functions: each a tuple (or list) when present.
DATA_HOOKS: Final[frozenset[str]] = frozenset({"listings"})


@runtime_checkable
class PolicyLike(PolicyPlugin, Protocol):
    """What the engine reads on a policy (module docstring): the plugin metadata
    (:class:`~mmkit.plugins.PolicyPlugin`) and every decision; an ``mmkit.policy`` plugin
    must have all of it; :class:`HotplugPolicy` is one. Optional: :data:`OPTIONAL_HOOKS`."""

    @property
    def passes(self) -> int: ...
    @property
    def pgtable_lock(self) -> bool: ...
    @property
    def vmemmap_tables(self) -> str: ...
    @property
    def linear_floor_ceiling(self) -> bool: ...
    @property
    def block_tlbi(self) -> str: ...
    @property
    def ptdump_hotplug_lock(self) -> bool: ...
    @property
    def memblock_after_arch_remove(self) -> bool | None: ...
    @property
    def boot_memory_notifier(self) -> bool: ...


def frees_vmemmap_tables(policy: PolicyLike, overlap: bool) -> bool:
    """Whether ``vmemmap_free()`` runs the free pass under ``policy`` in a layout with V7's
    overlap (``vmalloc_vmemmap_overlap``): never under ``never``, only without the overlap
    under ``no-overlap`` (V7), always otherwise (``floor-ceiling`` bounds it instead).

    >>> from mmkit.policies import get
    >>> frees_vmemmap_tables(get("v7"), overlap=True), frees_vmemmap_tables(get("v7"), False)
    (False, True)
    """
    if policy.vmemmap_tables == "never":
        return False
    if policy.vmemmap_tables == "no-overlap":
        return not overlap
    return True


def hook(policy: object, name: str) -> Any:
    """``policy``'s optional hook ``name`` (one of :data:`OPTIONAL_HOOKS`), or None when it
    has none: a function, or a tuple for the :data:`DATA_HOOKS`. Reading the attribute is
    guarded like a call (:func:`call_hook`)."""
    if name not in OPTIONAL_HOOKS:
        raise InvalidArgument(f"hook(): unknown optional hook {name!r}", choices=OPTIONAL_HOOKS)
    try:
        found = getattr(policy, name, None)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit included: a plugin must not end the kit
        raise _hook_error(policy, f"reading {name}", exc) from exc
    if found is None:
        return None
    if name in DATA_HOOKS:
        if not isinstance(found, (tuple, list)):
            raise PluginError(
                f"policy {_label(policy)}: {name} is {type(found).__name__}; expected a tuple"
            )
        return tuple(found)
    if not callable(found):
        raise PluginError(
            f"policy {_label(policy)}: {name} is {type(found).__name__}, not callable; "
            f"expected {OPTIONAL_HOOKS[name].split(':')[0]}"
        )
    return found


def call_hook(policy: object, name: str, *args: Any, default: Any = None) -> Any:
    """Call ``policy``'s optional hook ``name`` with ``args``; ``default`` if it has none.

    An :class:`~mmkit.errors.MmkitError` the hook raises on purpose passes through; any
    other exception, ``SystemExit`` included (not ``KeyboardInterrupt``), becomes a
    :class:`~mmkit.errors.PluginError` naming the policy and the hook.

    >>> class Exits:
    ...     name = "exits"
    ...     def keep_table(self, *args):
    ...         raise SystemExit(3)
    >>> try:
    ...     call_hook(Exits(), "keep_table", None, "pmd", 0, 1)
    ... except PluginError as err:
    ...     print(str(err).split(" (at ")[0])
    policy 'exits': keep_table() raised SystemExit: 3
    """
    fn = hook(policy, name)
    if fn is None:
        return default
    try:
        return fn(*args)
    except (KeyboardInterrupt, MmkitError):
        raise
    except BaseException as exc:
        raise _hook_error(policy, f"{name}()", exc) from exc


def check_hooks(obj: object) -> list[str]:
    """What is wrong with ``obj``'s optional hooks (empty if nothing): each one present
    must be callable. Reading them may raise (the caller guards it)."""
    problems = []
    for name, meaning in OPTIONAL_HOOKS.items():
        value = getattr(obj, name, None)
        if name in DATA_HOOKS:
            if value is not None and not isinstance(value, (tuple, list)):
                problems.append(
                    f"{name} is {type(value).__name__}; expected a tuple of "
                    f"{meaning.split(':')[1].strip()} or no {name} at all"
                )
            continue
        if value is not None and not callable(value):
            problems.append(
                f"{name} is {type(value).__name__}, not callable; expected "
                f"{meaning.split(':')[0]} or no {name} at all"
            )
    return problems


def _label(policy: object) -> str:
    try:
        return repr(getattr(policy, "name", type(policy).__name__))
    except KeyboardInterrupt:
        raise
    except BaseException:  # a label for an error message must not raise itself
        return repr(type(policy).__name__)


def _hook_error(policy: object, what: str, exc: BaseException) -> PluginError:
    from mmkit.plugins._helpers import _describe_exception

    return PluginError(
        f"policy {_label(policy)}: {what} raised {_describe_exception(exc)}; this is a bug in "
        "the policy plugin: report it to its authors, or disable it with MMKIT_DISABLE_PLUGINS"
    )


def check_decisions(obj: object) -> list[str]:
    """What is wrong with ``obj``'s decision fields (empty if nothing): each of
    :data:`DECISIONS` must be present and one of its values (``True``/``False`` as bools)."""
    problems = []
    for field, allowed in DECISIONS.items():
        if not hasattr(obj, field):
            problems.append(f"{field} is missing")
            continue
        value = getattr(obj, field)
        if not any(value is a or (type(value) is type(a) and value == a) for a in allowed):
            choices = ", ".join(repr(a) for a in allowed)
            problems.append(f"{field} is {value!r}; expected one of {choices}")
    return problems


@dataclass(frozen=True)
class HotplugPolicy:
    """One version's answers to the questions hot-remove must answer (module docstring)."""

    name: str
    description: str
    kernel_versions: tuple[str, ...]
    passes: int = 2
    pgtable_lock: bool = False
    vmemmap_tables: VmemmapTables = "always"
    linear_floor_ceiling: bool = False
    block_tlbi: BlockTlbi = "range"
    ptdump_hotplug_lock: bool = True
    memblock_after_arch_remove: bool | None = True
    boot_memory_notifier: bool = False
    history: str = ""
    api_version: str = "1.0"

    def __post_init__(self) -> None:
        problems = check_decisions(self)
        if problems:
            raise InvalidArgument(f"policy {self.name!r}: " + "; ".join(problems))

    def frees_vmemmap_tables(self, overlap: bool) -> bool:
        """Whether ``vmemmap_free()`` frees empty tables in a layout with this V7 overlap
        (:func:`frees_vmemmap_tables`; the engine calls that function, not this method)."""
        return frees_vmemmap_tables(self, overlap)
