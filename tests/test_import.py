"""``import mmkit`` stays light: no views, no heavy libraries, and its time is measured."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("plotly", "pandas", "ipywidgets", "numpy", "IPython", "anywidget")

PROBE = """
import json, sys, time
t = time.perf_counter()
import mmkit
import mmkit.arch
d = mmkit.arch.get("arm64-4k-48")
d.macros(); d.regions; d.vmalloc_vmemmap_overlap
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "modules": sorted(sys.modules)}))
"""


def test_import_mmkit_imports_no_view_library():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    loaded = {m.split(".")[0] for m in result["modules"]}
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert "mmkit.viz" not in result["modules"] and "mmkit.widgets" not in result["modules"]
    print(f"import mmkit + first descriptor: {result['seconds'] * 1000:.1f} ms")
