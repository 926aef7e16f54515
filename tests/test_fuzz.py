"""Property tests: encoder and parser agree, chunking never matters, no bytes crash.

The parser is also checked against ``ReferenceParser``, a slow, literal transcription of
WHATWG HTML §9.2.5-§9.2.6 that walks the decoded stream one character at a time.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wsgisse._event import MAX_RETRY, ServerSentEvent
from wsgisse._parser import Comment, EventStreamParser, MessageEvent, ParsedItem

# Modest example counts keep the suite fast (.hypothesis/, where failures are replayed from,
# is git-ignored).
fuzz = settings(max_examples=300, deadline=None)

# -- strategies -------------------------------------------------------------------------------

# Text biased towards line ends and the characters str.splitlines() wrongly splits on.
_awkward = st.sampled_from(["\r", "\n", "\x00", "\x0b", "\x85", "\u2028", "\ufeff", ":", " "])
texts = st.text(st.one_of(st.characters(codec="utf-8"), _awkward), max_size=30)
names = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=10)
ids = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=10)
json_values = st.recursive(
    st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
    | st.none(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=10,
)
data_values = st.one_of(texts, texts.map(str.encode), json_values.filter(lambda v: v is not None))
event_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "data": data_values,
        "event": names,
        "id": ids,
        "retry": st.integers(0, MAX_RETRY),
        "comment": texts,
    },
).filter(bool)

_tokens = st.sampled_from(
    [
        b"\r",
        b"\n",
        b"\r\n",
        b":",
        b": ",
        b" ",
        b"data",
        b"event",
        b"id",
        b"retry",
        b"\x00",
        b"\xef\xbb\xbf",
        b"\xc3",
        b"\xa9",
        b"\xf0\x9f\x8e\x89",
        b"\xff",
        b"x",
        b"7",
    ]
)
streams = st.one_of(
    st.binary(max_size=200),
    st.lists(st.one_of(_tokens, st.binary(max_size=3)), max_size=60).map(b"".join),
)


# -- helpers ----------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """What the format makes of line ends: CRLF and CR arrive as LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def feed_all(
    chunks: list[bytes], *, keep_comments: bool = True
) -> tuple[list[ParsedItem], str, int | None]:
    parser = EventStreamParser(keep_comments=keep_comments)
    out: list[ParsedItem] = []
    for chunk in chunks:
        out += parser.feed(chunk)
    out += parser.end()
    return out, parser.last_event_id, parser.retry


class ReferenceParser:
    """§9.2.5-§9.2.6 read literally, one character at a time, over the whole stream."""

    def __init__(self) -> None:
        self.items: list[ParsedItem] = []
        self.data_buffer = ""
        self.type_buffer = ""
        self.id_buffer = ""
        self.last_event_id = ""
        self.retry: int | None = None

    def parse(self, stream: bytes) -> tuple[list[ParsedItem], str, int | None]:
        text = stream.decode("utf-8", "replace")
        if text.startswith("\ufeff"):
            text = text[1:]
        line = ""
        i = 0
        while i < len(text):
            char = text[i]
            if char in "\r\n":
                self.line(line)
                line = ""
                if char == "\r" and text[i + 1 : i + 2] == "\n":
                    i += 1
            else:
                line += char
            i += 1
        # ``line`` is now the unterminated last line: discarded at end of stream.
        return self.items, self.last_event_id, self.retry

    def line(self, line: str) -> None:
        if line == "":
            self.dispatch()
        elif line.startswith(":"):
            comment = line[1:]
            self.items.append(Comment(comment[1:] if comment.startswith(" ") else comment))
        elif ":" in line:
            name, value = line.split(":", 1)
            self.field(name, value[1:] if value.startswith(" ") else value)
        else:
            self.field(line, "")

    def field(self, name: str, value: str) -> None:
        if name == "event":
            self.type_buffer = value
        elif name == "data":
            self.data_buffer += value + "\n"
        elif name == "id" and "\x00" not in value:
            self.id_buffer = value
        elif name == "retry" and value != "" and all(c in "0123456789" for c in value):
            self.retry = int(value)

    def dispatch(self) -> None:
        self.last_event_id = self.id_buffer
        if self.data_buffer == "":
            self.type_buffer = ""
            return
        if self.data_buffer.endswith("\n"):
            self.data_buffer = self.data_buffer[:-1]
        event = MessageEvent(self.type_buffer or "message", self.data_buffer, self.last_event_id)
        self.items.append(event)
        self.data_buffer = self.type_buffer = ""


# -- properties -------------------------------------------------------------------------------


@fuzz
@given(kwargs=event_kwargs)
def test_valid_event_round_trips_through_the_parser(kwargs: dict[str, Any]) -> None:
    event = ServerSentEvent(**kwargs)
    items, last_event_id, retry = feed_all([event.encode()])

    expected_comments = []
    if event.comment is not None:
        expected_comments = [Comment(line) for line in normalise(event.comment).split("\n")]
    assert [item for item in items if isinstance(item, Comment)] == expected_comments

    messages = [item for item in items if isinstance(item, MessageEvent)]
    if event.data is None:
        assert messages == []
    else:
        [received] = messages
        assert received.type == (event.event or "message")
        assert received.data == normalise(event.data)
        assert received.last_event_id == ("" if event.id is None else event.id)
        data = kwargs["data"]
        if not isinstance(data, (str, bytes)):
            assert json.loads(received.data) == data
    assert last_event_id == ("" if event.id is None else event.id)
    assert retry == event.retry


@fuzz
@given(events=st.lists(event_kwargs, max_size=8), cuts=st.lists(st.integers(0, 10_000)))
def test_concatenated_events_parse_alike_in_any_chunking(
    events: list[dict[str, Any]], cuts: list[int]
) -> None:
    frames = [ServerSentEvent(**kwargs).encode() for kwargs in events]
    parser = EventStreamParser(keep_comments=True)
    expected: list[ParsedItem] = []
    for frame in frames:
        expected += parser.feed(frame)
    stream = b"".join(frames)
    chunks = split_at(stream, [cut % (len(stream) + 1) for cut in cuts])
    assert feed_all(chunks) == (expected, parser.last_event_id, parser.retry)

    # Each event with data is dispatched once, with the last id sent up to it.
    last_ids = []
    last_id = ""
    for kwargs in events:
        last_id = kwargs.get("id", last_id)
        if "data" in kwargs:
            last_ids.append(last_id)
    assert [i.last_event_id for i in expected if isinstance(i, MessageEvent)] == last_ids


@fuzz
@given(stream=streams, cuts=st.lists(st.integers(0, 10_000), max_size=20))
def test_any_chunking_gives_the_same_result_as_one_feed(stream: bytes, cuts: list[int]) -> None:
    chunks = split_at(stream, [cut % (len(stream) + 1) for cut in cuts])
    assert feed_all(chunks) == feed_all([stream])
    assert feed_all(chunks, keep_comments=False) == feed_all([stream], keep_comments=False)


@fuzz
@given(stream=streams)
def test_parser_agrees_with_the_literal_reference(stream: bytes) -> None:
    expected = ReferenceParser().parse(stream)
    assert feed_all([stream]) == expected
    assert feed_all([stream[i : i + 1] for i in range(len(stream))]) == expected


@fuzz
@given(stream=st.binary(max_size=500), cuts=st.lists(st.integers(0, 500), max_size=10))
def test_no_bytes_crash_the_parser(stream: bytes, cuts: list[int]) -> None:
    items, last_event_id, retry = feed_all(split_at(stream, [c % (len(stream) + 1) for c in cuts]))
    for item in items:
        if isinstance(item, MessageEvent):
            assert item.type != ""
            assert "\r" not in item.data
            assert not any(char in item.type for char in "\r\n")
        else:
            assert not any(char in item.text for char in "\r\n")
    assert not any(char in last_event_id for char in "\r\n\x00")
    assert retry is None or retry >= 0
