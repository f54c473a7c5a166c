"""Typed errors that mirror the kernel's errno values.

Every error mmkit raises on bad input is a :class:`MmkitError`. Each subclass carries the
kernel errno that the simulated kernel would return (``-EINVAL``, ``-EBUSY``, ...), and a
message that names the culprit, what was expected, what was found, and the fix. An
operation that raises leaves the machine exactly as it was.

>>> try:
...     raise InvalidArgument("bad page size", choices=["4k", "16k", "64k"])
... except MmkitError as err:
...     (err.errno_name, err.choices)
('EINVAL', ('4k', '16k', '64k'))
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Iterable

__all__ = [
    "Busy",
    "Exists",
    "InvalidArgument",
    "MmkitError",
    "NoMemory",
    "NotFound",
    "NotPermitted",
    "PluginError",
    "UnknownName",
]


class MmkitError(Exception):
    """Base of every error mmkit raises on purpose.

    ``errno`` is the positive kernel errno value (``EINVAL`` = 22); ``choices`` lists the
    valid alternatives when there is a closed set to choose from.
    """

    errno: int = _errno.EINVAL

    def __init__(self, message: str, *, choices: Iterable[str] | None = None) -> None:
        self.choices: tuple[str, ...] = tuple(choices) if choices is not None else ()
        if self.choices:
            message = f"{message} (valid choices: {', '.join(self.choices)})"
        super().__init__(message)

    @property
    def errno_name(self) -> str:
        """The errno's symbolic name, e.g. ``"EBUSY"``."""
        return _errno.errorcode[self.errno]

    @property
    def kernel_return(self) -> int:
        """The value a kernel function would return: ``-errno``."""
        return -self.errno


class InvalidArgument(MmkitError, ValueError):
    """``-EINVAL``: an argument is malformed, misaligned or out of range."""

    errno = _errno.EINVAL


class UnknownName(InvalidArgument, KeyError):
    """``-EINVAL``: a name (configuration, policy, plugin) that nothing registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class NotFound(MmkitError, LookupError):
    """``-ENOENT``: the thing to act on is not there (e.g. removing unmapped memory)."""

    errno = _errno.ENOENT


class Busy(MmkitError):
    """``-EBUSY``: the resource is in use (online memory, boot memory, a held lock)."""

    errno = _errno.EBUSY


class NotPermitted(MmkitError, PermissionError):
    """``-EPERM``: refused on principle (a memory notifier said ``NOTIFY_BAD``)."""

    errno = _errno.EPERM


class Exists(MmkitError):
    """``-EEXIST``: the thing to create is already there (a range, a sysfs link)."""

    errno = _errno.EEXIST


class NoMemory(MmkitError, MemoryError):
    """``-ENOMEM``: the simulated allocator has no page frame to give."""

    errno = _errno.ENOMEM


class PluginError(MmkitError):
    """A plugin could not be loaded or does not honour the plugin contract."""

    errno = _errno.ENOEXEC
