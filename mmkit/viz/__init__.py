"""plotly views of the engine's records (import this module only where plotly is installed).

Every figure here is a plain :class:`plotly.graph_objects.Figure`: it renders in JupyterLab,
in an exported HTML page and on platforms without widgets, and it is the static fallback of
the matching widget in :mod:`mmkit.widgets`.
"""

from __future__ import annotations

from mmkit.viz.layout import KIND_COLORS, layout_figure, pgd_boundaries

__all__ = ["KIND_COLORS", "layout_figure", "pgd_boundaries"]
