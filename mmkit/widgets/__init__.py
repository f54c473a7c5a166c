"""ipywidgets views (import this module only where ipywidgets, plotly and anywidget are
installed: ``pip install 'mmkit[lab]'``).

Each widget here has a static fallback in :mod:`mmkit.viz` or :mod:`mmkit.tables` for
platforms that cannot run widgets; the widget's figure always equals that fallback. Every
click is also a Python method, and an exception in a callback is shown in the widget (and
logged), never lost.

* :class:`ConfigExplorer`: pick a configuration, see its kernel VA layout;
* :class:`Stepper`: step one kernel operation (or one interleaving of a race) and watch the
  page-table tree, the pseudo-source and the kernel log;
* :class:`RaceExplorer`: be the scheduler of a race, then search all its schedules;
* :class:`PolicyComparison`: every hotplug policy on one hot-add / hot-remove;
* :class:`PluginStatus`: every architecture and policy plugin, its status and the fix;
* :class:`MemblockOrder`: patch 1/3's frames (memblock, ``pfn_valid()``, sysfs links);
* :class:`CheckWidget`: any exercise of :mod:`mmkit.exercises`, checked in the kernel;
* :class:`OverlapExercise`: the welcome lesson's self-checked exercise.
"""

from __future__ import annotations

from mmkit.widgets.check import CheckWidget
from mmkit.widgets.compare import PolicyComparison
from mmkit.widgets.memblock import MemblockOrder
from mmkit.widgets.plugins import PluginStatus
from mmkit.widgets.race import RaceExplorer
from mmkit.widgets.stepper import Stepper, step_latencies
from mmkit.widgets.welcome import (
    KASAN_CHOICES,
    ConfigExplorer,
    Feedback,
    OverlapExercise,
    check_v7_answer,
    v7_candidates,
    v7_flagged,
)

__all__ = [
    "KASAN_CHOICES",
    "CheckWidget",
    "ConfigExplorer",
    "Feedback",
    "MemblockOrder",
    "OverlapExercise",
    "PluginStatus",
    "PolicyComparison",
    "RaceExplorer",
    "Stepper",
    "check_v7_answer",
    "step_latencies",
    "v7_candidates",
    "v7_flagged",
]
