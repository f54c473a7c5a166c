"""What the conformance suites share: the plugin, the registry check, hypothesis settings."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

from hypothesis import HealthCheck, settings

from mmkit import plugins

_API_RE = re.compile(r"(\d+)\.(\d+)")


def _api_problem(declared: object) -> str | None:
    match = _API_RE.fullmatch(declared) if isinstance(declared, str) else None
    if match is None:
        return f"api_version is {declared!r}; expected a 'MAJOR.MINOR' string like " + repr(
            plugins.API_VERSION
        )
    if match[1] != plugins.API_VERSION.split(".")[0]:
        return (
            f"api_version {declared!r} has another major version than this mmkit's plugin API "
            f"{plugins.API_VERSION}; mmkit would disable the plugin (api-mismatch)"
        )
    return None


def _equal_to_any(value: object, valid: Sequence[object]) -> bool:
    # Equality, not identity of type: a plugin may accept 48.0 for 48, and that is fine.
    try:
        return any(value == v for v in valid)
    except Exception:  # an exotic __eq__ that raises: treat the value as a bad one
        return False


class _Conformance:
    """What both suites share: the plugin, the registry check, hypothesis settings."""

    plugin: ClassVar[Any] = None
    group: ClassVar[str] = ""
    #: Hypothesis examples per property check; derandomized so CI runs are reproducible.
    max_examples: ClassVar[int] = 30

    def _plugin(self) -> Any:
        if self.plugin is None:
            raise TypeError(
                f"{type(self).__name__}: set the class attribute plugin = <your plugin object> "
                f"(what your {self.group or 'mmkit'} entry point names)"
            )
        return self.plugin

    def _settings(self) -> settings:
        return settings(
            max_examples=self.max_examples,
            deadline=None,
            database=None,  # no .hypothesis/ directory in the plugin author's tree
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )

    def _culprit(self, subject: str | None = None) -> str:
        plugin = self._plugin()
        label = getattr(plugin, "family", None) or getattr(plugin, "name", None) or "plugin"
        return f"{label}[{subject}]" if subject else str(label)

    def test_api_version(self) -> None:
        problem = _api_problem(getattr(self._plugin(), "api_version", None))
        assert problem is None, f"{self._culprit()}: {problem}"

    def test_registers_cleanly(self) -> None:
        """The registry's own load checks accept the plugin (status ``ok``)."""
        name = self._culprit()
        with plugins.isolated(entries=()):
            report = plugins.register(self.group, name, self._plugin())
        assert report.status == "ok", (
            f"{name}: mmkit's registry reports {report.status}: {report.message}; fix: {report.fix}"
        )
