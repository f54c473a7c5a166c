"""The author guide's notebook path runs as written: docs/plugins.md's policy, registered
for the session, shows in the status panel, PolicyComparison, the RaceExplorer and the race."""

from __future__ import annotations

import re
from pathlib import Path

from mmkit import plugins

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def test_the_guides_session_snippets_run():
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    runnable = [b for b in blocks if "mmkit_mine" not in b]  # the rest needs a package
    assert len(runnable) == 2, "the HotplugPolicy example and the session snippet"
    define, session = runnable
    session = session.replace('mmkit.plugins.unregister("mmkit.policy", "mine")', "")
    namespace: dict[str, object] = {}
    with plugins.isolated():
        exec(compile(define, str(GUIDE), "exec"), namespace)
        exec(compile(session, str(GUIDE), "exec"), namespace)
        assert namespace["report"].ok  # type: ignore[attr-defined]
        assert "mine" in plugins.policy_plugins()
        plugins.unregister("mmkit.policy", "mine")
        assert "mine" not in plugins.policy_plugins()
