"""Patch 1/3 frame by frame: why ``try_remove_memory()`` must remove memblock ranges last.

:class:`MemblockOrder` steps through :func:`mmkit.scenarios.memblock_order.memblock_order`:
hot-add one memory block on node 0, offline it, remove it, add it again. Each frame is one
kernel step once performed: the operation and the step (kernel function and pseudo-source
line), memblock.memory and memblock.reserved (:func:`mmkit.viz.memblock.memblock_figure`,
with the block's first pfn marked), what ``pfn_valid()`` and ``get_nid_for_pfn()`` answer for
that pfn, and the sysfs tree of nodes and memory blocks (:func:`mmkit.viz.sysfs.sysfs_figure`,
a stale ``node0/memoryN`` link in red). On v5.3 ``memblock_remove()`` runs before the block's
links are removed, ``get_nid_for_pfn()`` finds no node, the link stays, and the re-add hits
``BUG_ON(ret)`` (the last frame, with the kernel's report in a red banner). The kernel switch
replays the same scenario on v5.4 (which unlinks by the block's stored nid, commit
60bb462fc7ad) or v5.5 (which removes memblock last, commit 32d1fe8fcb32): no stale link.

The figures of a frame are exactly the static figures of the machine at that frame: the
scenario runs one machine forward, so the widget keeps it at the frame shown, running on to
go forward and rebuilding and replaying to go back (a replay of the whole scenario takes
about 10 ms).

>>> mo = MemblockOrder("v5.3")
>>> mo.to_event(); mo.frame.event.split(":")[0]
'kernel BUG in add_memory_resource'
>>> mo.frame.pfn_valid, bool(mo.stale_links())
(True, True)
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from mmkit.errors import InvalidArgument
from mmkit.machine import Machine
from mmkit.scenarios.memblock_order import Frame, MemblockOrderScenario, memblock_order
from mmkit.viz._common import RED, machine_label
from mmkit.widgets._base import ErrorPane, figure_widget
from mmkit.widgets._source import source_html
from mmkit.widgets._sync import sync_figure

__all__ = ["KERNELS", "MemblockOrder", "frame_figures"]

#: The kernel versions the switch offers: the buggy order and the two fixes.
KERNELS: tuple[str, ...] = ("v5.3", "v5.4", "v5.5")


def frame_figures(
    scenario: MemblockOrderScenario, frame: Frame, index: int, count: int
) -> tuple[go.Figure, go.Figure]:
    """The memblock and sysfs figures of ``scenario``'s machine as it is now, captioned with
    ``frame`` (number ``index`` of ``count``): the static figures a frame shows."""
    from mmkit.viz.memblock import memblock_figure
    from mmkit.viz.sysfs import sysfs_figure

    m = scenario.machine
    where = f"frame {index + 1}/{count}, {frame.operation}: {frame.step.function}()"
    mb = memblock_figure(m, title=f"memblock after {where}", mark_pfn=scenario.pfn)
    return mb, sysfs_figure(m, title=f"sysfs after {where}")


class MemblockOrder:
    """Step through patch 1/3's frames on one kernel version (see the module docstring).

    Attributes:
        kernel_picker: ``ToggleButtons`` of :data:`KERNELS`.
        slider: ``IntSlider`` over the frames; ``play`` a ``Play`` linked to it.
        back_button, step_button, event_button: one frame back, one forward, to the next
            kernel event.
        step_html: the operation and the step, with its pseudo-source line.
        pfn_html: ``pfn_valid()`` and ``get_nid_for_pfn()`` of the block's first pfn, and
            the block's sysfs links.
        banner: the kernel's report at a frame that raised an event (empty otherwise).
        memblock: ``go.FigureWidget`` of memblock; ``sysfs``: of the sysfs tree.
        frames: every :class:`~mmkit.scenarios.memblock_order.Frame` of the run.
        errors: the :class:`~mmkit.widgets._base.ErrorPane`; ``widget`` the container.
    """

    def __init__(self, kernel: str = "v5.3", *, config: str = "arm64-4k-48") -> None:
        if kernel not in KERNELS:
            raise InvalidArgument(f"MemblockOrder: kernel {kernel!r}", choices=KERNELS)
        self.config = config
        self.errors = ErrorPane()
        self._syncing = False
        self._load(kernel)

        self.title = widgets.HTML()
        self.kernel_picker = widgets.ToggleButtons(
            options=list(KERNELS),
            value=kernel,
            description="Kernel",
            tooltips=[
                "v5.3: memblock_remove() before the links are removed",
                "v5.4: links removed by the block's stored nid (60bb462fc7ad)",
                "v5.5: memblock removed last (32d1fe8fcb32)",
            ],
            style={"description_width": "initial", "button_width": "64px"},
        )
        self.slider = widgets.IntSlider(
            value=0,
            min=0,
            max=len(self.frames) - 1,
            description="Frame",
            continuous_update=False,
            layout=widgets.Layout(width="320px"),
        )
        self.play = widgets.Play(min=0, max=len(self.frames) - 1, interval=400)
        widgets.jslink((self.play, "value"), (self.slider, "value"))
        self.back_button = widgets.Button(description="Back", icon="step-backward")
        self.step_button = widgets.Button(description="Step", icon="step-forward")
        self.event_button = widgets.Button(
            description="To next kernel event", icon="fast-forward", layout={"width": "auto"}
        )
        self.step_html = widgets.HTML()
        self.pfn_html = widgets.HTML()
        self.banner = widgets.HTML()
        mb, sysfs = self.static_figures()
        self.memblock = figure_widget(mb)
        self.sysfs = figure_widget(sysfs)

        guard = self.errors.guard
        self.back_button.on_click(guard(lambda _b: self.back()))
        self.step_button.on_click(guard(lambda _b: self.step()))
        self.event_button.on_click(guard(lambda _b: self.to_event()))
        self.slider.observe(guard(self._on_slider), names="value")
        self.kernel_picker.observe(guard(self._on_kernel), names="value")

        wrap = widgets.Layout(flex_flow="row wrap", align_items="center", width="100%")
        self.widget = widgets.VBox(
            [
                self.title,
                self.kernel_picker,
                widgets.HBox(
                    [self.play, self.slider, self.back_button, self.step_button, self.event_button],
                    layout=wrap,
                ),
                self.errors.widget,
                self.step_html,
                self.pfn_html,
                self.banner,
                self.memblock,
                self.sysfs,
            ],
            layout=widgets.Layout(width="100%", max_width="1200px"),
        )
        self._show(figures=False)

    # ------------------------------------------------------------------ state
    def _load(self, kernel: str) -> None:
        self.kernel = kernel
        self.frames: list[Frame] = memblock_order(kernel, self.config).run()
        self.index = 0
        self._scenario: MemblockOrderScenario | None = None
        self._running: Iterator[Frame] | None = None
        self._at = -1

    @property
    def frame(self) -> Frame:
        """The frame shown now."""
        return self.frames[self.index]

    @property
    def scenario(self) -> MemblockOrderScenario:
        """The scenario, its machine as it is at the frame shown."""
        return self._scenario_at(self.index)

    @property
    def machine(self) -> Machine:
        return self.scenario.machine

    def _scenario_at(self, index: int) -> MemblockOrderScenario:
        # forward: run the live scenario on; back: rebuild it and replay (about 10 ms)
        if self._scenario is None or self._at > index:
            self._scenario = memblock_order(self.kernel, self.config)
            self._running, self._at = self._scenario.frames(), -1
        assert self._running is not None
        while self._at < index:
            next(self._running)
            self._at += 1
        return self._scenario

    def stale_links(self) -> list[Any]:
        """The stale ``nodeN/memoryM`` links at the frame shown
        (:func:`mmkit.viz.sysfs.stale_links`)."""
        from mmkit.viz.sysfs import stale_links

        return stale_links(self.machine)

    def static_figures(self) -> tuple[go.Figure, go.Figure]:
        """The memblock and sysfs figures of the frame shown (the figures without widgets)."""
        return frame_figures(self.scenario, self.frame, self.index, len(self.frames))

    # ---------------------------------------------------------------- driving
    def go_to(self, index: int) -> None:
        """Show frame ``index`` (0-based; what the slider does)."""
        if not 0 <= index < len(self.frames):
            raise InvalidArgument(
                f"frame {index}: there are {len(self.frames)} frames (0..{len(self.frames) - 1})"
            )
        self.index = index
        self._sync_slider()
        self._show()

    def step(self) -> None:
        """One frame forward."""
        if self.index + 1 >= len(self.frames):
            raise InvalidArgument("this is the last frame")
        self.go_to(self.index + 1)

    def back(self) -> None:
        """One frame back."""
        if self.index == 0:
            raise InvalidArgument("this is the first frame")
        self.go_to(self.index - 1)

    def to_event(self) -> None:
        """Go to the next frame whose step raised a kernel event (the BUG on v5.3)."""
        for i in range(self.index + 1, len(self.frames)):
            if self.frames[i].event:
                self.go_to(i)
                return
        raise InvalidArgument(f"no kernel event after this frame on {self.kernel}")

    def set_kernel(self, kernel: str) -> None:
        """Replay the scenario on ``kernel`` (the kernel switch), from its first frame."""
        if kernel not in KERNELS:
            raise InvalidArgument(f"MemblockOrder: kernel {kernel!r}", choices=KERNELS)
        self._load(kernel)
        self._syncing = True
        try:
            self.kernel_picker.value = kernel
            self.slider.max = self.play.max = len(self.frames) - 1
            self.slider.value = 0
        finally:
            self._syncing = False
        self._show()

    # --------------------------------------------------------------- updating
    def _on_slider(self, change: dict[str, Any]) -> None:
        if not self._syncing and change["new"] != self.index:
            self.go_to(change["new"])

    def _on_kernel(self, change: dict[str, Any]) -> None:
        if not self._syncing and change["new"] != self.kernel:
            self.set_kernel(change["new"])

    def _sync_slider(self) -> None:
        self._syncing = True
        try:
            self.slider.value = self.index
        finally:
            self._syncing = False

    def _show(self, *, figures: bool = True) -> None:
        frame, sc = self.frame, self.scenario
        m = sc.machine
        self.title.value = (
            "<h3 style='margin:4px 0'>Patch 1/3, memblock order: "
            f"{html.escape(machine_label(m))}</h3>"
            f"<div>hot-add memory{sc.block} [{sc.start:#x}, {sc.start + sc.size:#x}) on node 0, "
            "offline it, remove it, add it again</div>"
        )
        ops = list(dict.fromkeys(f.operation for f in self.frames))
        step = frame.step
        self.step_html.value = (
            f"<div><b>{html.escape(frame.operation)}</b> (operation "
            f"{ops.index(frame.operation) + 1}/{len(ops)}), frame {self.index + 1}/"
            f"{len(self.frames)}: {html.escape(step.describe())}</div>"
            + source_html(step, m.kernel, m.policy)
        )
        valid = "true" if frame.pfn_valid else "false"
        links = "".join(f"<li><code>{html.escape(p)}</code></li>" for p in frame.links)
        stale = self.stale_links()
        why = {"dangling": "pointing at a removed block", "hit": "in the way of the re-add"}
        self.pfn_html.value = (
            f"<div style='font-family:monospace'>pfn_valid({sc.pfn:#x}) = <b>{valid}</b>; "
            f"get_nid_for_pfn({sc.pfn:#x}) = <b>{frame.nid_for_pfn}</b>"
            + (" (no node)" if frame.nid_for_pfn < 0 else "")
            + "</div>"
            + f"<div>sysfs links of memory{sc.block}:"
            + (f"<ul style='margin:0'>{links}</ul>" if links else " none")
            + "</div>"
            + (
                f"<div style='color:{RED}'><b>stale link</b>: "
                + html.escape(
                    ", ".join(
                        f"node{s.nid}/memory{s.block} ({why.get(s.why, s.why)})" for s in stale
                    )
                )
                + "</div>"
                if stale
                else ""
            )
        )
        self.banner.value = (
            f"<div style='border:2px solid {RED};background:#fdecea;padding:4px 8px;"
            "border-radius:4px'><pre style='margin:0;white-space:pre-wrap'>"
            f"{html.escape(frame.event)}</pre></div>"
            if frame.event
            else ""
        )
        self.back_button.disabled = self.index == 0
        self.step_button.disabled = self.index + 1 >= len(self.frames)
        self.event_button.disabled = not any(f.event for f in self.frames[self.index + 1 :])
        if figures:
            mb, sysfs = self.static_figures()
            sync_figure(self.memblock, mb)
            sync_figure(self.sysfs, sysfs)

    # ---------------------------------------------------------------- display
    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
