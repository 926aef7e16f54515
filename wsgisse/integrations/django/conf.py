"""The ``WSGISSE`` setting: its keys, their defaults, and what is wrong with a value.

Pure (it imports no settings itself): :func:`collect` gathers the setting from a settings
object, :func:`problems` lists what the system checks report, and :func:`load` turns a
valid dict into :class:`Settings`. The keys mirror the Flask integration's ``WSGISSE_*``
config keys, plus what a Django project sets in one place (backend, channels, CORS, the
channel manager). Each key may be given in the ``WSGISSE`` dict (``WSGISSE =
{"HEARTBEAT": 5}``) or as a setting of its own with the prefix (``WSGISSE_HEARTBEAT = 5``),
not both.
"""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["DEFAULTS", "Problem", "Settings", "collect", "load", "problems"]

#: Every key of ``settings.WSGISSE`` and its default.
DEFAULTS: Final[Mapping[str, Any]] = {
    # As the Flask keys (WSGISSE_HEARTBEAT, ...): see wsgisse.integrations.flask.
    "HEARTBEAT": 15.0,
    "RETRY": 3000,
    "HISTORY": 1000,
    "MAX_CONNECTIONS": None,
    "MAX_CONNECTIONS_PER_CLIENT": None,
    "MAX_LIFETIME": None,
    "WRITE_TIMEOUT": 30.0,
    # Django's own.
    "CHANNELS": None,
    "BACKEND": "memory",
    "REDIS_URL": None,
    "CORS": None,
    "CHANNEL_MANAGER": "wsgisse.integrations.django.ChannelManager",
}

BACKENDS: Final = ("memory", "redis")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the setting: a check id (``wsgisse.E001``), a message, a hint."""

    id: str
    message: str
    hint: str | None = None
    error: bool = True


@dataclass(frozen=True)
class Settings:
    """The ``WSGISSE`` setting with its defaults filled in (see :data:`DEFAULTS`)."""

    heartbeat: float | None = 15.0
    retry: int | None = 3000
    history: int = 1000
    max_connections: int | None = None
    max_connections_per_client: int | None = None
    max_lifetime: float | None = None
    write_timeout: float | None = 30.0
    channels: frozenset[str] | None = None
    backend: str = "memory"
    redis_url: str | None = None
    cors: Mapping[str, Any] | None = field(default=None)
    channel_manager: str = "wsgisse.integrations.django.ChannelManager"


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value: object, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _value_problems(values: Mapping[str, Any]) -> list[Problem]:
    """Every problem with the values of the settings, each naming the key and the fix."""
    found = [
        Problem("wsgisse.E003", f"WSGISSE[{key!r}] {why}, not {values[key]!r}")
        for key, accepts, why in _RULES
        if not accepts(values[key])
    ]
    return found + _backend_problems(values) + _cors_problems(values["CORS"])


def _seconds(value: object) -> bool:
    return value is None or (_number(value) and value > 0)  # type: ignore[operator]


def _channel_names(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str) or not isinstance(value, Iterable):
        return False
    return all(isinstance(name, str) and name for name in value)


# One flat table: the key, what it accepts, and what the message says it must be.
_RULES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("HEARTBEAT", _seconds, "must be a positive number of seconds or None"),
    ("MAX_LIFETIME", _seconds, "must be a positive number of seconds or None"),
    ("WRITE_TIMEOUT", _seconds, "must be a positive number of seconds or None"),
    (
        "RETRY",
        lambda value: value is None or _whole(value, 0),
        "must be a whole number of milliseconds, 0 or more, or None",
    ),
    ("HISTORY", lambda value: _whole(value, 0), "must be a whole number, 0 or more"),
    (
        "MAX_CONNECTIONS",
        lambda value: value is None or _whole(value, 1),
        "must be a whole number, 1 or more, or None",
    ),
    (
        "MAX_CONNECTIONS_PER_CLIENT",
        lambda value: value is None or _whole(value, 1),
        "must be a whole number, 1 or more, or None",
    ),
    ("CHANNELS", _channel_names, "must be a list of channel names or None (any name)"),
    (
        "CHANNEL_MANAGER",
        lambda value: isinstance(value, str),
        "must be the dotted path of a ChannelManager class",
    ),
)


def _backend_problems(values: Mapping[str, Any]) -> list[Problem]:
    backend = values["BACKEND"]
    if backend not in BACKENDS:
        choices = ", ".join(map(repr, BACKENDS))
        return [
            Problem("wsgisse.E004", f"WSGISSE['BACKEND'] must be one of {choices}, not {backend!r}")
        ]
    found = []
    if backend == "redis":
        if not isinstance(values["REDIS_URL"], str):
            found.append(
                Problem(
                    "wsgisse.E005",
                    "WSGISSE['BACKEND'] is 'redis' but WSGISSE['REDIS_URL'] is not set",
                    hint="e.g. 'redis://127.0.0.1:6379/0'",
                )
            )
        if importlib.util.find_spec("redis") is None:
            found.append(
                Problem(
                    "wsgisse.E005",
                    "WSGISSE['BACKEND'] is 'redis' but the redis package is not installed",
                    hint="pip install wsgisse[redis]",
                )
            )
    return found


def _cors_problems(cors: object) -> list[Problem]:
    if cors is None:
        return []
    try:
        _make_cors(cors)
    except (TypeError, ValueError) as exc:
        return [Problem("wsgisse.E006", f"WSGISSE['CORS'] is invalid: {exc}")]
    return []


def _make_cors(value: object) -> Any:
    from wsgisse import CORS  # noqa: PLC0415 - the core is imported only once configured

    if not isinstance(value, Mapping):
        raise TypeError("it must be a dict of wsgisse.CORS arguments, e.g. {'origins': [...]}")
    return CORS(**value)


def collect(settings: object) -> tuple[object, list[Problem]]:
    """The setting from a settings object: the ``WSGISSE`` dict and any ``WSGISSE_*`` names.

    Returns the merged value (what :func:`problems` and :func:`load` take) and the keys
    set both ways (``wsgisse.E008``).
    """
    raw = getattr(settings, "WSGISSE", None)
    prefixed = {
        key: getattr(settings, f"WSGISSE_{key}")
        for key in DEFAULTS
        if hasattr(settings, f"WSGISSE_{key}")
    }
    if not prefixed:
        return raw, []
    if raw is None:
        return prefixed, []
    if not isinstance(raw, Mapping):
        return raw, []  # E001 says what is wrong
    twice = [
        Problem(
            "wsgisse.E008",
            f"WSGISSE[{key!r}] and WSGISSE_{key} are both set",
            hint="keep one of them",
        )
        for key in prefixed
        if key in raw
    ]
    return {**prefixed, **raw}, twice


def problems(raw: object) -> list[Problem]:
    """What is wrong with ``raw``, the value of ``settings.WSGISSE`` (``None``: unset)."""
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        return [Problem("wsgisse.E001", f"WSGISSE must be a dict, not {type(raw).__name__}")]
    found = []
    for key in raw:
        if key not in DEFAULTS:
            close = difflib.get_close_matches(str(key), list(DEFAULTS), n=1)
            found.append(
                Problem(
                    "wsgisse.E002",
                    f"WSGISSE has an unknown key {key!r}",
                    hint=f"did you mean {close[0]!r}?" if close else f"keys: {', '.join(DEFAULTS)}",
                )
            )
    return found + _value_problems({**DEFAULTS, **raw})


def load(raw: object) -> Settings:
    """Turn ``settings.WSGISSE`` into :class:`Settings`.

    Raises:
        django.core.exceptions.ImproperlyConfigured: the first of :func:`problems`
            (``manage.py check`` lists them all).
    """
    found = [problem for problem in problems(raw) if problem.error]
    if found:
        from django.core.exceptions import ImproperlyConfigured  # noqa: PLC0415

        raise ImproperlyConfigured(f"{found[0].message} ({found[0].id})")
    values = {**DEFAULTS, **(raw or {})}  # type: ignore[dict-item]
    channels = values["CHANNELS"]
    return Settings(
        heartbeat=values["HEARTBEAT"],
        retry=values["RETRY"],
        history=values["HISTORY"],
        max_connections=values["MAX_CONNECTIONS"],
        max_connections_per_client=values["MAX_CONNECTIONS_PER_CLIENT"],
        max_lifetime=values["MAX_LIFETIME"],
        write_timeout=values["WRITE_TIMEOUT"],
        channels=None if channels is None else frozenset(channels),
        backend=values["BACKEND"],
        redis_url=values["REDIS_URL"],
        cors=values["CORS"],
        channel_manager=values["CHANNEL_MANAGER"],
    )
