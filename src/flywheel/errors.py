"""The one error hierarchy of flywheel, and how a user mistake is shown (what, why, fix; en/ja).

    FlywheelError                  a user-facing problem: rendered without a traceback
     ├── ConfigError               a setting or config file is wrong
     ├── InputError                bad input on the command line or in a file
     ├── MissingDependencyError    a package, model file or key that a feature needs is absent
     ├── SecurityError             a request was refused on purpose (SSRF guard, auth)
     └── ServiceError              an embedded or remote service is not usable
          ├── PortInUseError       the port a service wants is held by another process
          ├── ServiceStartError    a service did not become healthy
          └── ServiceUnavailableError  a service the command needs is not reachable

Anything else is a bug and keeps its traceback. Third-party exceptions are translated at the
boundary with ``raise FlywheelError(...) from exc``.
"""

from __future__ import annotations

from typing import Any

from flywheel.i18n import current_lang, message

__all__ = [
    "ConfigError",
    "FlywheelError",
    "InputError",
    "MissingDependencyError",
    "PortInUseError",
    "SecurityError",
    "ServiceError",
    "ServiceStartError",
    "ServiceUnavailableError",
]


class FlywheelError(Exception):
    """A problem the user can fix. ``key`` names its message in :mod:`flywheel.i18n`."""

    key = "generic"
    exit_code = 2

    def __init__(self, key: str | None = None, /, **params: Any) -> None:
        if key is not None:
            self.key = key
        self.params = params
        super().__init__(self.render("en").splitlines()[0])

    def parts(self, lang: str | None = None) -> tuple[str, str, str]:
        """(what happened, why, how to fix) in the given or current language."""
        return message(self.key, lang or current_lang(), **self.params)

    def render(self, lang: str | None = None) -> str:
        lang = lang or current_lang()
        what, why, fix = self.parts(lang)
        labels = {"en": ("Why", "Fix"), "ja": ("原因", "対処")}[lang]
        return f"{what}\n  {labels[0]}: {why}\n  {labels[1]}: {fix}"


class ConfigError(FlywheelError):
    key = "config_invalid"


class InputError(FlywheelError):
    key = "input_invalid"


class MissingDependencyError(FlywheelError):
    key = "missing_dependency"


class SecurityError(FlywheelError):
    key = "security"


class ServiceError(FlywheelError):
    key = "service"


class PortInUseError(ServiceError):
    key = "port_in_use"


class ServiceStartError(ServiceError):
    key = "service_start"


class ServiceUnavailableError(ServiceError):
    key = "service_unavailable"
