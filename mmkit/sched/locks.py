"""Kernel locks as the hotplug paths take them, with the kernel's sharing rules.

* ``mem_hotplug_lock``: a per-CPU read/write semaphore (``DEFINE_STATIC_PERCPU_RWSEM``):
  ``get_online_mems()`` takes it for read (shared; ptdump with patch 2/3),
  ``mem_hotplug_begin()`` for write (exclusive; add, online, offline, remove).
* ``device_hotplug_lock``: a mutex (``lock_device_hotplug()``).
* ``init_mm.page_table_lock``: a spinlock; vmalloc takes it only to install a table page.

A lock that cannot be taken now *blocks* the thread asking for it: the scheduler will not
run that thread until the lock is free. Taking a lock already held by the same thread is a
self-deadlock (none of these locks is recursive) and is reported as such.

>>> t = LockTable()
>>> t.acquire("mem_hotplug_lock", "read", "P"); t.available("mem_hotplug_lock", "write", "H")
False
>>> t.release("mem_hotplug_lock", "P"); t.available("mem_hotplug_lock", "write", "H")
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mmkit.errors import InvalidArgument

__all__ = ["KERNEL_LOCKS", "LockTable"]

#: the locks the hotplug lessons use and their kind
KERNEL_LOCKS: dict[str, str] = {
    "mem_hotplug_lock": "percpu-rwsem",
    "device_hotplug_lock": "mutex",
    "init_mm.page_table_lock": "spinlock",
}

_MODES = ("read", "write", "exclusive")


@dataclass
class LockTable:
    """Who holds which lock, in which mode."""

    holders: dict[str, dict[str, str]] = field(default_factory=dict)  #: lock -> thread -> mode

    def available(self, name: str, mode: str, thread: str) -> bool:
        """Whether ``thread`` could take ``name`` in ``mode`` right now."""
        held = self.holders.get(name, {})
        # free, or only readers hold it and this is one more reader
        return not held or (mode == "read" and all(m == "read" for m in held.values()))

    def self_deadlock(self, name: str, thread: str) -> bool:
        """``thread`` asks again for a lock it already holds."""
        return thread in self.holders.get(name, {})

    def acquire(self, name: str, mode: str, thread: str) -> None:
        if mode not in _MODES:
            raise InvalidArgument(f"lock mode {mode!r}", choices=_MODES)
        if not self.available(name, mode, thread):
            raise InvalidArgument(
                f"{thread} cannot take {name} ({mode}): held by {self.holders[name]}"
            )
        self.holders.setdefault(name, {})[thread] = mode

    def release(self, name: str, thread: str) -> None:
        held = self.holders.get(name, {})
        if thread not in held:
            raise InvalidArgument(f"{thread} releases {name}, which it does not hold")
        del held[thread]
        if not held:
            del self.holders[name]

    def held_by(self, thread: str) -> dict[str, str]:
        return {n: h[thread] for n, h in self.holders.items() if thread in h}

    def snapshot(self) -> tuple[object, ...]:
        return tuple(sorted((n, tuple(sorted(h.items()))) for n, h in self.holders.items()))
