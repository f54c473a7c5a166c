"""Threads, locks and the scheduler that interleaves the engine's step generators."""

from mmkit.sched.locks import KERNEL_LOCKS, LockTable
from mmkit.sched.scheduler import Scheduler, Thread, lock_request

__all__ = ["KERNEL_LOCKS", "LockTable", "Scheduler", "Thread", "lock_request"]
