"""ServerSentEvent: what it encodes to, what it refuses, and how it behaves as a value."""

from __future__ import annotations

import copy
import enum
import pickle
from typing import Any

import pytest
from cases import CASES, Case

from wsgisse._errors import InvalidEventError
from wsgisse._event import MAX_RETRY, ServerSentEvent


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_event_encodes_to_the_table_bytes(case: Case) -> None:
    assert ServerSentEvent(**case.kwargs).encode() == case.wire


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_every_frame_ends_in_exactly_one_empty_line(case: Case) -> None:
    lines = ServerSentEvent(**case.kwargs).encode().split(b"\n")
    assert lines[-2:] == [b"", b""]
    assert b"" not in lines[:-2]
    assert not any(b"\r" in line for line in lines)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_id_line_is_last_so_the_body_precedes_it(case: Case) -> None:
    event = ServerSentEvent(**case.kwargs)
    lines = event.encode().split(b"\n")[:-2]
    id_lines = [line for line in lines if line.startswith(b"id:")]
    if event.id is None:
        assert id_lines == []
    else:
        assert id_lines == [lines[-1]] == [b"id: " + event.id.encode()]


def test_data_is_positional_and_other_fields_are_keyword_only() -> None:
    assert ServerSentEvent("x").data == "x"
    with pytest.raises(TypeError):
        ServerSentEvent("x", "name")  # type: ignore[call-arg]


def test_data_attribute_is_the_converted_text() -> None:
    assert ServerSentEvent(b"caf\xc3\xa9").data == "café"
    assert ServerSentEvent(bytearray(b"ab")).data == "ab"
    assert ServerSentEvent(memoryview(b"ab")).data == "ab"
    assert ServerSentEvent({"a": [1, 2]}).data == '{"a":[1,2]}'
    assert ServerSentEvent(1.5).data == "1.5"
    assert ServerSentEvent(True).data == "true"
    assert ServerSentEvent("null").data == "null"
    assert ServerSentEvent(id="1").data is None


def test_str_subclass_is_sent_as_plain_str() -> None:
    class Markup(str):
        def __str__(self) -> str:
            return "not this"

    event = ServerSentEvent(Markup("<b>"), event=Markup("e"), id=Markup("1"), comment=Markup("c"))
    assert event.encode() == b": c\nevent: e\ndata: <b>\nid: 1\n\n"
    assert type(event.data) is str
    assert type(event.event) is str
    assert type(event.id) is str
    assert type(event.comment) is str


def test_int_subclass_retry_is_stored_as_plain_int() -> None:
    class Delay(enum.IntEnum):
        SHORT = 500

    event = ServerSentEvent(retry=Delay.SHORT)
    assert event.encode() == b"retry: 500\n\n"
    assert type(event.retry) is int


def test_json_is_encoded_once_compactly_without_ascii_escapes() -> None:
    event = ServerSentEvent({"text": "é", "n": None})
    assert event.encode() == 'data: {"text":"é","n":null}\n\n'.encode()


def test_falsy_optional_fields_are_real_values() -> None:
    event = ServerSentEvent("", event="", id="", retry=0, comment="")
    assert event.encode() == b": \nevent: \nretry: 0\ndata: \nid: \n\n"


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("LF in event", {"data": "x", "event": "a\nb"}, "event"),
    ("CR in event", {"data": "x", "event": "a\rb"}, "event"),
    ("CRLF as event", {"data": "x", "event": "\r\n"}, "event"),
    ("LF in id", {"data": "x", "id": "1\n"}, "id"),
    ("CR in id", {"data": "x", "id": "\r1"}, "id"),
    ("NUL in id", {"data": "x", "id": "a\x00b"}, "id"),
    ("negative retry", {"retry": -1}, "retry"),
    ("retry above 2**31-1", {"retry": MAX_RETRY + 1}, "retry"),
    ("float retry", {"retry": 1.5}, "retry"),
    ("integral float retry", {"retry": 10.0}, "retry"),
    ("str retry", {"retry": "10"}, "retry"),
    ("True as retry", {"retry": True}, "retry"),
    ("False as retry", {"retry": False}, "retry"),
    ("non-serialisable data", {"data": object()}, "data"),
    ("set as data", {"data": {1, 2}}, "data"),
    ("NaN data", {"data": float("nan")}, "data"),
    ("infinite data", {"data": [float("inf")]}, "data"),
    ("invalid UTF-8 bytes", {"data": b"\xff\xfe"}, "data"),
    ("truncated UTF-8 bytes", {"data": b"caf\xc3"}, "data"),
    ("lone surrogate in data", {"data": "a\ud800"}, "data"),
    ("lone surrogate in event", {"data": "x", "event": "\udfff"}, "event"),
    ("lone surrogate in id", {"data": "x", "id": "\ud83c"}, "id"),
    ("lone surrogate in comment", {"comment": "\ud800"}, "comment"),
    ("int event", {"data": "x", "event": 5}, "event"),
    ("bytes event", {"data": "x", "event": b"e"}, "event"),
    ("int id", {"data": "x", "id": 5}, "id"),
    ("bytes id", {"data": "x", "id": b"1"}, "id"),
    ("bytes comment", {"comment": b"c"}, "comment"),
    ("no field at all", {}, "event"),
    ("every field None", {"data": None, "event": None, "id": None}, "event"),
]


@pytest.mark.parametrize(
    ("kwargs", "field"), [row[1:] for row in INVALID], ids=[row[0] for row in INVALID]
)
def test_invalid_field_raises_invalid_event_error_naming_it(
    kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidEventError) as info:
        ServerSentEvent(**kwargs)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)


def test_retry_none_is_no_retry_field() -> None:
    assert ServerSentEvent("x", retry=None).encode() == b"data: x\n\n"


def test_retry_bounds_are_inclusive() -> None:
    assert ServerSentEvent(retry=0).retry == 0
    assert ServerSentEvent(retry=MAX_RETRY).retry == 2**31 - 1


def test_non_serialisable_data_chains_the_type_error() -> None:
    with pytest.raises(InvalidEventError) as info:
        ServerSentEvent(object())
    assert isinstance(info.value.__cause__, TypeError)


def test_circular_data_chains_the_value_error() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(InvalidEventError) as info:
        ServerSentEvent(loop)
    assert info.value.field == "data"
    assert isinstance(info.value.__cause__, ValueError)


def test_invalid_utf8_chains_the_decode_error() -> None:
    with pytest.raises(InvalidEventError) as info:
        ServerSentEvent(b"\x80")
    assert isinstance(info.value.__cause__, UnicodeDecodeError)
    assert info.value.value == b"\x80"


def test_error_carries_the_refused_value() -> None:
    with pytest.raises(InvalidEventError) as info:
        ServerSentEvent("x", id="a\nb")
    assert info.value.value == "a\nb"
    assert "CR, LF or NUL" in str(info.value)


@pytest.mark.parametrize(
    "name", ["data", "event", "id", "retry", "comment", "other", "_data", "_frame"]
)
def test_event_is_frozen(name: str) -> None:
    event = ServerSentEvent("x", event="e", id="1", retry=5, comment="c")
    with pytest.raises(AttributeError):
        setattr(event, name, "y")
    with pytest.raises(AttributeError):
        delattr(event, name)
    assert event.encode() == b": c\nevent: e\nretry: 5\ndata: x\nid: 1\n\n"


def test_equal_events_have_equal_hashes() -> None:
    a = ServerSentEvent("x", event="e", id="0", retry=0)
    b = ServerSentEvent("x", event="e", id="0", retry=0)
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


def test_events_that_send_the_same_data_are_equal() -> None:
    assert ServerSentEvent(b"1") == ServerSentEvent(1) == ServerSentEvent("1")


@pytest.mark.parametrize(
    "other",
    [
        ServerSentEvent("y", event="e", id="0", retry=0),
        ServerSentEvent("x", event="f", id="0", retry=0),
        ServerSentEvent("x", id="0", retry=0),
        ServerSentEvent("x", event="e", id="", retry=0),
        ServerSentEvent("x", event="e", id="0"),
        ServerSentEvent("x", event="e", id="0", retry=0, comment=""),
    ],
)
def test_events_differing_in_one_field_are_unequal(other: ServerSentEvent) -> None:
    assert ServerSentEvent("x", event="e", id="0", retry=0) != other


def test_event_is_not_equal_to_other_types() -> None:
    assert ServerSentEvent("x") != "x"
    assert ServerSentEvent("x") != b"data: x\n\n"


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_repr_rebuilds_an_equal_event(case: Case) -> None:
    event = ServerSentEvent(**case.kwargs)
    rebuilt = eval(repr(event), {"ServerSentEvent": ServerSentEvent})  # noqa: S307
    assert rebuilt == event
    assert rebuilt.encode() == event.encode()


def test_repr_shows_only_fields_that_are_set() -> None:
    assert repr(ServerSentEvent("x", id="0")) == "ServerSentEvent('x', id='0')"
    assert repr(ServerSentEvent(retry=0)) == "ServerSentEvent(retry=0)"


def test_event_survives_pickle_and_copy() -> None:
    event = ServerSentEvent({"a": 1}, event="e", id="1", retry=0, comment="c")
    unpickled = pickle.loads(pickle.dumps(event))  # noqa: S301 - bytes this test just made
    for clone in (unpickled, copy.copy(event), copy.deepcopy(event)):
        assert clone == event
        assert clone.encode() == event.encode()


def test_encode_returns_the_same_bytes_every_time() -> None:
    event = ServerSentEvent("x")
    assert event.encode() is event.encode()
