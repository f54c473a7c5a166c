"""Keep a lesson kernel's first widget fast: import jsonschema without its IRI grammar.

A plotly ``FigureWidget`` imports ``plotly.io``'s renderers, which import nbformat, which
imports jsonschema. jsonschema registers its optional format checkers at import, and for the
``iri`` and ``iri-reference`` formats it imports ``rfc3987_syntax`` when that is installed
(JupyterLab's event schemas pull it in), which compiles a Lark grammar: about 2 s of every
lesson kernel's start, 4 s on a loaded machine, measured with ``python -X importtime``.

:func:`import_jsonschema_without_iri_grammar` imports jsonschema once with
``rfc3987_syntax`` hidden, then un-hides it: a later ``import rfc3987_syntax`` works as usual;
only jsonschema's ``FormatChecker`` in this process skips the two IRI formats (format checks
are opt-in in jsonschema, and nbformat does not use them). Nothing happens if jsonschema was
imported already, or if ``MMKIT_FULL_JSONSCHEMA`` is set.
"""

from __future__ import annotations

import importlib
import os
import sys

__all__ = ["import_jsonschema_without_iri_grammar"]

_GRAMMAR = "rfc3987_syntax"


def import_jsonschema_without_iri_grammar() -> bool:
    """Import jsonschema with :data:`_GRAMMAR` hidden; True if this call did so."""
    if "jsonschema" in sys.modules or _GRAMMAR in sys.modules:
        return False
    if os.environ.get("MMKIT_FULL_JSONSCHEMA"):
        return False
    sys.modules[_GRAMMAR] = None  # type: ignore[assignment]  # makes its import fail
    try:
        importlib.import_module("jsonschema")
    except ImportError:  # jsonschema is not installed: nothing to speed up
        return False
    finally:
        del sys.modules[_GRAMMAR]
    return True
