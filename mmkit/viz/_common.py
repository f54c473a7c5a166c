"""Small helpers the figures of :mod:`mmkit.viz` share: how a title names the machine, and
the colour-blind-safe palette (Okabe-Ito, as :data:`mmkit.viz.layout.KIND_COLORS`)."""

from __future__ import annotations

from typing import Any

__all__ = ["OKABE_ITO", "RED", "config_label", "is_teaching", "machine_label"]

#: Okabe-Ito: distinguishable with every common colour-vision deficiency.
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "grey": "#999999",
}

#: The one colour that means "something is wrong here" in every figure (always paired with
#: a dashed line, a symbol or a text label, never colour alone).
RED = "#E41A1C"


def is_teaching(desc: Any) -> bool:
    """Whether ``desc`` is a teaching layout (``teach-*``, not a kernel layout)."""
    return getattr(desc, "family", "") == "arm64-teaching" or str(
        getattr(desc, "name", "")
    ).startswith("teach-")


def config_label(desc: Any, kernel: str | None = None) -> str:
    """``"arm64-4k-48, Linux v5.4"``, with a warning when the layout is a teaching one."""
    kernel = kernel or getattr(desc, "kernel", None)
    text = str(getattr(desc, "name", desc))
    if kernel:
        text += f", Linux {kernel}"
    if is_teaching(desc):
        text += " (teaching layout, not a kernel layout)"
    return text


def machine_label(machine: Any) -> str:
    """:func:`config_label` of a machine: its configuration and the kernel era its hotplug
    code runs (``machine.kernel``, which can differ from the layout's era)."""
    return config_label(machine.desc, getattr(machine, "kernel", None))
