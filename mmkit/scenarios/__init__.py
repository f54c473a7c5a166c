"""Ready-made lesson scenarios: a machine, the operations to run, and what to watch."""

from mmkit.scenarios.memblock_order import MemblockOrderScenario, memblock_order

__all__ = ["MemblockOrderScenario", "memblock_order"]
