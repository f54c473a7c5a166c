"""The lesson kernel's jsonschema import skips only the IRI grammar, and hides nothing after."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import sys
import mmkit.widgets
import plotly.graph_objects as go
go.FigureWidget()
import jsonschema
assert 'rfc3987_syntax' not in sys.modules, 'the IRI grammar was compiled'
import rfc3987_syntax  # still importable by anyone who asks for it
print('ok', jsonschema.__name__)
"""


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:

    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_widgets_import_jsonschema_without_the_iri_grammar_and_hide_nothing() -> None:
    done = _run(PROBE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok jsonschema"


def test_the_full_jsonschema_is_one_variable_away() -> None:
    code = "import sys, mmkit.widgets, jsonschema; print('rfc3987_syntax' in sys.modules)"
    assert _run(code, MMKIT_FULL_JSONSCHEMA="1").stdout.strip() == "True"
    assert _run(code).stdout.strip() == "False"


def test_nothing_happens_when_jsonschema_came_first() -> None:
    import jsonschema  # noqa: F401  (this process imported it already, or does now)

    from mmkit.widgets._startup import import_jsonschema_without_iri_grammar

    assert import_jsonschema_without_iri_grammar() is False
