"""ipywidgets views (import this module only where ipywidgets, plotly and anywidget are
installed: ``pip install 'mmkit[lab]'``).

Each widget here has a static fallback in :mod:`mmkit.viz` or :mod:`mmkit.tables` for
platforms that cannot run widgets; the widget's figure always equals that fallback.
"""

from __future__ import annotations

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
    "ConfigExplorer",
    "Feedback",
    "OverlapExercise",
    "check_v7_answer",
    "v7_candidates",
    "v7_flagged",
]
