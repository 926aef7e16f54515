"""The Django integration's settings, system checks and on_commit form, without a server.

``conf.problems`` is pure and runs here; Django itself is configured in a subprocess
(``live/django_units.py``), so that this test process keeps no Django settings.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
from _servers import LIVE_DIR, python_env

from wsgisse.integrations.django.conf import DEFAULTS, collect, load, problems

pytestmark = pytest.mark.django


def run_units(*args: str) -> str:
    """Run ``live/django_units.py ARGS``; return its output."""
    done = subprocess.run(
        [sys.executable, str(LIVE_DIR / "django_units.py"), *args],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("setting", "ids"),
    [
        (None, []),
        ({}, []),
        (dict(DEFAULTS), []),
        ([("HEARTBEAT", 1)], ["wsgisse.E001"]),
        ({"HEARTBEET": 5}, ["wsgisse.E002"]),
        ({"HEARTBEAT": 0}, ["wsgisse.E003"]),
        ({"HEARTBEAT": True}, ["wsgisse.E003"]),
        ({"HEARTBEAT": None, "MAX_LIFETIME": None, "RETRY": None}, []),
        ({"RETRY": -1}, ["wsgisse.E003"]),
        ({"RETRY": 0}, []),
        ({"HISTORY": 0}, []),
        ({"HISTORY": 1.5}, ["wsgisse.E003"]),
        ({"MAX_CONNECTIONS": 0}, ["wsgisse.E003"]),
        ({"MAX_CONNECTIONS_PER_CLIENT": 1}, []),
        ({"WRITE_TIMEOUT": -1}, ["wsgisse.E003"]),
        ({"CHANNELS": "news"}, ["wsgisse.E003"]),
        ({"CHANNELS": ["news", ""]}, ["wsgisse.E003"]),
        ({"CHANNELS": ["news"]}, []),
        ({"BACKEND": "rabbit"}, ["wsgisse.E004"]),
        ({"BACKEND": "redis"}, ["wsgisse.E005"]),
        ({"BACKEND": "redis", "REDIS_URL": "redis://127.0.0.1:6379/0"}, []),
        ({"CORS": {"origins": "*", "allow_credentials": True}}, ["wsgisse.E006"]),
        ({"CORS": ["https://a.example"]}, ["wsgisse.E006"]),
        ({"CORS": {"origins": ["https://a.example"]}}, []),
        ({"CHANNEL_MANAGER": 3}, ["wsgisse.E003"]),
    ],
)
def test_each_wrong_setting_is_named_with_its_check_id(setting: object, ids: list[str]) -> None:
    assert [problem.id for problem in problems(setting)] == ids


def test_a_misspelt_key_gets_the_right_one_as_a_hint() -> None:
    (problem,) = problems({"HISTROY": 10})
    assert problem.hint == "did you mean 'HISTORY'?"


def test_each_key_may_also_be_a_prefixed_setting_of_its_own_but_not_both() -> None:
    assert collect(SimpleNamespace()) == (None, [])
    assert collect(SimpleNamespace(WSGISSE={"RETRY": 1})) == ({"RETRY": 1}, [])
    assert collect(SimpleNamespace(WSGISSE_HEARTBEAT=5)) == ({"HEARTBEAT": 5}, [])
    merged, twice = collect(SimpleNamespace(WSGISSE={"RETRY": 1}, WSGISSE_HEARTBEAT=5))
    assert (merged, twice) == ({"RETRY": 1, "HEARTBEAT": 5}, [])
    merged, twice = collect(SimpleNamespace(WSGISSE={"RETRY": 1}, WSGISSE_RETRY=2))
    assert [problem.id for problem in twice] == ["wsgisse.E008"]
    assert twice[0].message == "WSGISSE['RETRY'] and WSGISSE_RETRY are both set"


def test_load_fills_in_the_defaults_and_refuses_what_the_checks_report() -> None:
    settings = load({"CHANNELS": ["a", "b"], "HEARTBEAT": 2})
    assert settings.channels == frozenset({"a", "b"})
    assert (settings.heartbeat, settings.retry, settings.history) == (2, 3000, 1000)
    # ImproperlyConfigured, Django's error for a wrong setting.
    with pytest.raises(Exception, match=r"WSGISSE\['HISTORY'\].*wsgisse.E003") as caught:
        load({"HISTORY": -1})
    assert type(caught.value).__name__ == "ImproperlyConfigured"


def test_manage_py_check_reports_the_setting_the_manager_and_missing_middleware() -> None:
    assert run_units("checks", json.dumps({"CHANNELS": ["news"]})) == "-"
    assert run_units("checks", json.dumps({"HEARTBEAT": -1, "BACKEND": "x"})).split() == [
        "wsgisse.E003",
        "wsgisse.E004",
    ]
    manager = {"CHANNEL_MANAGER": "no.such.Manager"}
    assert run_units("checks", json.dumps(manager)) == "wsgisse.E007"
    not_a_manager = {"CHANNEL_MANAGER": "wsgisse.Channel"}
    assert run_units("checks", json.dumps(not_a_manager)) == "wsgisse.E007"
    assert run_units("checks", json.dumps({"_MIDDLEWARE": []})) == "wsgisse.W001"


def test_send_event_on_commit_publishes_after_the_commit_and_never_on_rollback() -> None:
    steps = json.loads(run_units("on_commit"))
    assert steps["inside"] == ""
    assert steps["committed"].startswith('event: kept\ndata: {"price":"1.50"}\nid: ')
    assert steps["rolled back"] == ""
    assert "no channel 'elsewhere'" in steps["unknown channel"]


def test_the_view_takes_channels_from_the_url_or_the_query_and_refuses_clearly() -> None:
    answers = json.loads(run_units("views"))
    stream_type = "text/event-stream; charset=utf-8"
    # The first chunk: the preamble, with the stream's starting position as its id.
    prelude = re.compile(r": wsgisse\nretry: 3000\nid: [^\n]+\n\n\Z")
    for name, subscribed in [
        ("fixed", {"news": 1, "sport": 0}),
        # The URL names the channel: the client's ?channel= is ignored, as in
        # django-eventstream.
        ("fixed ignores ?channel", {"news": 1, "sport": 0}),
        ("path", {"news": 0, "sport": 1}),
        ("query", {"news": 1, "sport": 1}),
    ]:
        status, first_chunk, counts = answers[name][:3]
        assert (status, counts) == (200, subscribed), name
        assert prelude.match(first_chunk), (name, first_chunk)
    assert answers["fixed"][3] == stream_type
    assert answers["path, unknown"][0] == 404  # not in WSGISSE["CHANNELS"]
    assert answers["query, none"][0] == 400
    assert answers["post"][0] == 405
    assert answers["head"][:3] == [200, "", stream_type]
    assert answers["bad id"][:2] == [400, "Last-Event-ID contains NUL, CR or LF\n"]
    # Closing Django's response closed the stream: nobody is subscribed any more.
    assert answers["after"] == {"news": 0, "sport": 0}


def test_the_view_applies_the_cors_setting() -> None:
    answers = json.loads(run_units("views"))
    assert answers["cors"][0] == 200
    assert answers["cors"][-1] == "https://app.example"
    assert answers["cors, elsewhere"][0] == 403
    assert answers["fixed"][-1] is None  # same origin: no CORS header
    # A 204 has no Content-Type (Django would add text/html).
    assert answers["preflight"] == [204, "", None, "https://app.example"]
