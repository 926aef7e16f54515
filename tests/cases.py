"""The one table of events shared by the encoder and parser tests.

Each case names the keyword arguments of a ``ServerSentEvent``, the exact bytes it encodes
to, and what a browser's ``EventSource`` does with those bytes on a fresh connection: the
message events it dispatches, and its last event ID, reconnection time and (for a parser
that keeps them) comments afterwards. ``test_event.py`` checks the first half,
``test_parser.py`` the second, so the two can never drift apart.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from wsgisse._parser import MessageEvent


class Case(NamedTuple):
    """One row of the table: an event, its bytes, and what a browser makes of them."""

    name: str
    kwargs: dict[str, Any]
    """The arguments of ``ServerSentEvent(**kwargs)``."""
    wire: bytes
    """What ``encode()`` returns."""
    messages: tuple[MessageEvent, ...]
    """What a browser dispatches for ``wire`` on a fresh connection."""
    last_event_id: str = ""
    """``parser.last_event_id`` after ``wire``."""
    retry: int | None = None
    """``parser.retry`` after ``wire``."""
    comments: tuple[str, ...] = ()
    """The ``Comment`` texts a parser with ``keep_comments=True`` returns."""


def message(data: str, type: str = "message", last_event_id: str = "") -> MessageEvent:
    """A MessageEvent with the defaults of an unnamed event on a fresh connection."""
    return MessageEvent(type=type, data=data, last_event_id=last_event_id)


CASES: list[Case] = [
    Case("plain", {"data": "hello"}, b"data: hello\n\n", (message("hello"),)),
    Case(
        "named",
        {"data": "x", "event": "update"},
        b"event: update\ndata: x\n\n",
        (message("x", type="update"),),
    ),
    Case(
        "empty event name is dispatched as message",
        {"data": "x", "event": ""},
        b"event: \ndata: x\n\n",
        (message("x"),),
    ),
    Case(
        "event name with colon and spaces",
        {"data": "x", "event": " a:b "},
        b"event:  a:b \ndata: x\n\n",
        (message("x", type=" a:b "),),
    ),
    Case(
        "id zero",
        {"data": "a", "id": "0"},
        b"data: a\nid: 0\n\n",
        (message("a", last_event_id="0"),),
        last_event_id="0",
    ),
    Case("id only", {"id": "7"}, b"id: 7\n\n", (), last_event_id="7"),
    Case("empty id resets", {"data": "a", "id": ""}, b"data: a\nid: \n\n", (message("a"),)),
    Case(
        "id with leading space and unicode",
        {"data": "a", "id": " é-1"},
        b"data: a\nid:  \xc3\xa9-1\n\n",
        (message("a", last_event_id=" é-1"),),
        last_event_id=" é-1",
    ),
    Case("retry zero", {"retry": 0}, b"retry: 0\n\n", (), retry=0),
    Case("retry max", {"retry": 2**31 - 1}, b"retry: 2147483647\n\n", (), retry=2**31 - 1),
    Case(
        "retry with data",
        {"data": "x", "retry": 3000},
        b"retry: 3000\ndata: x\n\n",
        (message("x"),),
        retry=3000,
    ),
    Case("empty data", {"data": ""}, b"data: \n\n", (message(""),)),
    Case("trailing newline", {"data": "a\n"}, b"data: a\ndata: \n\n", (message("a\n"),)),
    Case("only a newline", {"data": "\n"}, b"data: \ndata: \n\n", (message("\n"),)),
    Case("lone CR", {"data": "a\rb"}, b"data: a\ndata: b\n\n", (message("a\nb"),)),
    Case("only a CR", {"data": "\r"}, b"data: \ndata: \n\n", (message("\n"),)),
    Case("CRLF", {"data": "a\r\nb"}, b"data: a\ndata: b\n\n", (message("a\nb"),)),
    Case(
        "CRLF, CR and LF mixed",
        {"data": "a\r\n\rb\n\r\n"},
        b"data: a\ndata: \ndata: b\ndata: \ndata: \n\n",
        (message("a\n\nb\n\n"),),
    ),
    Case("leading space", {"data": " a"}, b"data:  a\n\n", (message(" a"),)),
    Case("leading colon", {"data": ":a"}, b"data: :a\n\n", (message(":a"),)),
    Case(
        "line that looks like a field",
        {"data": "id: 5\nevent: x"},
        b"data: id: 5\ndata: event: x\n\n",
        (message("id: 5\nevent: x"),),
    ),
    Case(
        "unicode and astral characters",
        {"data": "é 漢 🎉"},
        "data: é 漢 🎉\n\n".encode(),
        (message("é 漢 🎉"),),
    ),
    Case(
        "byte order mark inside data is kept",
        {"data": "\ufeffx"},
        b"data: \xef\xbb\xbfx\n\n",
        (message("\ufeffx"),),
    ),
    Case(
        "JSON object",
        {"data": {"a": 1, "b": [True, None], "é": "漢"}},
        'data: {"a":1,"b":[true,null],"é":"漢"}\n\n'.encode(),
        (message('{"a":1,"b":[true,null],"é":"漢"}'),),
    ),
    Case(
        "JSON object with newline in a string",
        {"data": {"text": "a\nb"}},
        b'data: {"text":"a\\nb"}\n\n',
        (message('{"text":"a\\nb"}'),),
    ),
    Case(
        "JSON list",
        {"data": [1, "two", 3.5]},
        b'data: [1,"two",3.5]\n\n',
        (message('[1,"two",3.5]'),),
    ),
    Case("JSON int", {"data": 42}, b"data: 42\n\n", (message("42"),)),
    Case("JSON bool", {"data": False}, b"data: false\n\n", (message("false"),)),
    Case("bytes", {"data": b"caf\xc3\xa9"}, b"data: caf\xc3\xa9\n\n", (message("café"),)),
    Case("empty bytes", {"data": b""}, b"data: \n\n", (message(""),)),
    Case(
        "comment only",
        {"comment": "keep-alive"},
        b": keep-alive\n\n",
        (),
        comments=("keep-alive",),
    ),
    Case("empty comment", {"comment": ""}, b": \n\n", (), comments=("",)),
    Case(
        "multi-line comment",
        {"comment": "a\nb\r\nc\r"},
        b": a\n: b\n: c\n: \n\n",
        (),
        comments=("a", "b", "c", ""),
    ),
    Case(
        "comment with leading space",
        {"comment": " x"},
        b":  x\n\n",
        (),
        comments=(" x",),
    ),
    Case(
        "every field, in wire order",
        {"data": "d", "event": "e", "id": "1", "retry": 10, "comment": "c"},
        b": c\nevent: e\nretry: 10\ndata: d\nid: 1\n\n",
        (message("d", type="e", last_event_id="1"),),
        last_event_id="1",
        retry=10,
        comments=("c",),
    ),
    Case(
        "blank lines in data cannot end the event",
        {"data": "\n\ndata: injected\n\n"},
        b"data: \ndata: \ndata: data: injected\ndata: \ndata: \n\n",
        (message("\n\ndata: injected\n\n"),),
    ),
    Case(
        "unicode line separators do not split",
        {"data": "a\u2028b\u2029c\x85d\x0be\x0cf\x1cg\x1dh\x1ei"},
        "data: a\u2028b\u2029c\x85d\x0be\x0cf\x1cg\x1dh\x1ei\n\n".encode(),
        (message("a\u2028b\u2029c\x85d\x0be\x0cf\x1cg\x1dh\x1ei"),),
    ),
    Case("NUL in data", {"data": "a\x00b"}, b"data: a\x00b\n\n", (message("a\x00b"),)),
]
