"""EventStreamParser: the case table read as a browser reads it, and the spec's edge cases.

The table is fed whole, a byte at a time, split at every point, and followed by trailing
bytes of an event that never ends (h11's ``tr`` discipline). The edge cases follow WHATWG
HTML §9.2.5 "Parsing an event stream" and §9.2.6 "Interpreting an event stream".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pytest
from cases import CASES, Case, message

from wsgisse._parser import Comment, EventStreamParser, MessageEvent, ParsedItem


def parse(
    chunks: Iterable[bytes], *, keep_comments: bool = False
) -> tuple[list[ParsedItem], EventStreamParser]:
    """Feed every chunk to a new parser, end the stream, and return what it produced."""
    parser = EventStreamParser(keep_comments=keep_comments)
    out: list[ParsedItem] = []
    for chunk in chunks:
        out += parser.feed(chunk)
    assert parser.end() == []
    return out, parser


def expected_items(case: Case, *, keep_comments: bool) -> list[ParsedItem]:
    # Comment lines come first in every frame, so they come out before the message.
    comments: list[ParsedItem] = [Comment(text) for text in case.comments] if keep_comments else []
    return comments + list(case.messages)


def byte_by_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# -- the case table ---------------------------------------------------------------------------


@pytest.mark.parametrize("keep_comments", [False, True], ids=["drop-comments", "keep-comments"])
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_table_fed_whole_gives_what_a_browser_dispatches(case: Case, keep_comments: bool) -> None:
    items, parser = parse([case.wire], keep_comments=keep_comments)
    assert items == expected_items(case, keep_comments=keep_comments)
    assert parser.last_event_id == case.last_event_id
    assert parser.retry == case.retry


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_table_fed_byte_by_byte_dispatches_on_the_last_byte(case: Case) -> None:
    parser = EventStreamParser()
    per_byte = [parser.feed(byte) for byte in byte_by_byte(case.wire)]
    assert per_byte[-1] == list(case.messages)
    assert not any(per_byte[:-1])
    assert parser.last_event_id == case.last_event_id
    assert parser.retry == case.retry


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_table_split_at_every_point_gives_the_same_items(case: Case) -> None:
    expected = expected_items(case, keep_comments=True)
    for i in range(len(case.wire) + 1):
        items, parser = parse([case.wire[:i], case.wire[i:]], keep_comments=True)
        assert items == expected, i
        assert parser.last_event_id == case.last_event_id
        assert parser.retry == case.retry


@pytest.mark.parametrize(
    "trailing",
    [b"data: never dispatched", b"id: lost\nevent: lost\ndata: never dispatched\n", b"\r"],
    ids=["partial-line", "unterminated-event", "lone-CR"],
)
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_table_with_trailing_unterminated_event_discards_it(case: Case, trailing: bytes) -> None:
    for chunks in ([case.wire + trailing], byte_by_byte(case.wire + trailing)):
        items, parser = parse(chunks)
        assert items == list(case.messages)
        assert parser.last_event_id == case.last_event_id
        assert parser.retry == case.retry


def test_whole_table_as_one_stream_keeps_events_independent() -> None:
    expected: list[ParsedItem] = []
    last_event_id = ""
    retry = None
    for case in CASES:
        if "id" in case.kwargs:
            last_event_id = case.kwargs["id"]
        if "retry" in case.kwargs:
            retry = case.kwargs["retry"]
        expected += [dataclasses.replace(m, last_event_id=last_event_id) for m in case.messages]
    stream = b"".join(case.wire for case in CASES)
    for chunks in ([stream], byte_by_byte(stream)):
        items, parser = parse(chunks)
        assert items == expected
        assert parser.last_event_id == last_event_id
        assert parser.retry == retry


# -- byte order mark --------------------------------------------------------------------------


def test_bom_at_start_of_stream_is_dropped() -> None:
    stream = b"\xef\xbb\xbfdata: x\n\n"
    assert parse([stream])[0] == [message("x")]
    assert parse(byte_by_byte(stream))[0] == [message("x")]


def test_only_the_first_bom_is_dropped() -> None:
    # The second BOM is part of the first line's field name, "\ufeffdata", which is unknown.
    stream = b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n"
    assert parse([stream])[0] == [message("y")]
    assert parse(byte_by_byte(stream))[0] == [message("y")]


def test_bom_after_start_of_stream_is_kept() -> None:
    assert parse([b"data: x\n\n", b"\xef\xbb\xbfdata: y\n\n"])[0] == [message("x")]
    assert parse([b"data: \xef\xbb\xbfy\n\n"])[0] == [message("\ufeffy")]


def test_bom_after_an_empty_first_chunk_is_dropped() -> None:
    assert parse([b"", b"\xef\xbb\xbfdata: x\n\n"])[0] == [message("x")]


def test_bom_is_dropped_again_at_start_of_the_next_stream() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"\xef\xbb\xbfdata: 1\n\n") == [message("1")]
    parser.end()
    assert parser.feed(b"\xef\xbb\xbfdata: 2\n\n") == [message("2")]


# -- line ends --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stream",
    [
        b"data: a\ndata: b\n\n",
        b"data: a\rdata: b\r\r",
        b"data: a\r\ndata: b\r\n\r\n",
        b"data: a\rdata: b\r\n\n",
        b"data: a\r\ndata: b\n\r",
    ],
    ids=["LF", "CR", "CRLF", "CR-CRLF-LF", "CRLF-LF-CR"],
)
def test_cr_lf_and_crlf_all_end_lines(stream: bytes) -> None:
    assert parse([stream])[0] == [message("a\nb")]
    assert parse(byte_by_byte(stream))[0] == [message("a\nb")]


def test_lf_then_cr_is_two_line_ends() -> None:
    assert parse([b"data: a\n\rdata: b\n\n"])[0] == [message("a"), message("b")]


def test_crlf_split_across_feeds_is_one_line_end() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\ndata: b\r") == []
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\r") == [message("a\nb")]
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\n") == []


def test_crlf_split_by_an_empty_feed_is_still_one_line_end() -> None:
    assert parse([b"data: a\r", b"", b"\ndata: b\r", b"", b"\n\n"])[0] == [message("a\nb")]


def test_cr_ending_a_feed_ends_the_line_at_once() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\r") == [message("a")]


def test_cr_at_end_of_feed_followed_by_text_is_a_line_end() -> None:
    assert parse([b"data: a\r", b"data: b\r\r"])[0] == [message("a\nb")]


def test_long_line_fed_in_small_chunks_is_one_line() -> None:
    value = "é" * 5000
    stream = f"data: {value}\n\n".encode()
    chunks = [stream[i : i + 3] for i in range(0, len(stream), 3)]
    assert parse(chunks)[0] == [message(value)]


def test_many_events_in_one_feed_come_out_in_order() -> None:
    stream = b"".join(b"data: %d\n\n" % i for i in range(100))
    assert parse([stream])[0] == [message(str(i)) for i in range(100)]


# -- fields -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "data"),
    [
        (b"data\n\n", ""),
        (b"data\ndata\n\n", "\n"),
        (b"data:x\n\n", "x"),
        (b"data:\n\n", ""),
        (b"data: \n\n", ""),
        (b"data:  x\n\n", " x"),
        (b"data: x \n\n", "x "),
        (b"data:\tx\n\n", "\tx"),
        (b"data: a:b: c\n\n", "a:b: c"),
        (b"data: a\x00b\n\n", "a\x00b"),
    ],
)
def test_field_value_loses_exactly_one_leading_space(stream: bytes, data: str) -> None:
    assert parse([stream])[0] == [message(data)]


@pytest.mark.parametrize(
    "line",
    [b"foo: bar", b"Data: x", b"DATA: x", b" data: x", b"data : x", b"\tdata: x"],
)
def test_unknown_field_is_ignored(line: bytes) -> None:
    assert parse([b"data: kept\n" + line + b"\n\n"])[0] == [message("kept")]
    assert parse([line + b"\n\n"])[0] == []


def test_event_field_names_the_event() -> None:
    assert parse([b"event: a\nevent: b\ndata: x\n\n"])[0] == [message("x", type="b")]


def test_event_field_without_value_means_message() -> None:
    assert parse([b"event\ndata: x\n\n"])[0] == [message("x")]
    assert parse([b"event:\ndata: x\n\n"])[0] == [message("x")]


def test_event_type_is_reset_after_each_dispatch() -> None:
    items = parse([b"event: a\ndata: 1\n\ndata: 2\n\n"])[0]
    assert items == [message("1", type="a"), message("2")]


def test_event_without_data_is_not_dispatched_and_resets_the_type() -> None:
    assert parse([b"event: x\n\ndata: y\n\n"])[0] == [message("y")]


def test_blank_lines_alone_dispatch_nothing() -> None:
    assert parse([b"\n\n\r\n\r\r"])[0] == []


def test_last_event_id_is_carried_across_events() -> None:
    items, parser = parse([b"id: 1\ndata: a\n\ndata: b\n\n"])
    assert items == [message("a", last_event_id="1"), message("b", last_event_id="1")]
    assert parser.last_event_id == "1"


def test_id_applies_only_when_the_event_ends() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"id: 1\ndata: a\n") == []
    assert parser.last_event_id == ""
    assert parser.feed(b"\n") == [message("a", last_event_id="1")]
    assert parser.last_event_id == "1"


def test_id_only_event_sets_last_event_id_without_dispatch() -> None:
    items, parser = parse([b"id: 9\n\n"])
    assert items == []
    assert parser.last_event_id == "9"


@pytest.mark.parametrize("line", [b"id", b"id:", b"id: "])
def test_empty_id_resets_last_event_id(line: bytes) -> None:
    items, parser = parse([b"id: 5\ndata: a\n\n" + line + b"\ndata: b\n\n"])
    assert items == [message("a", last_event_id="5"), message("b")]
    assert parser.last_event_id == ""


def test_id_with_nul_is_ignored() -> None:
    items, parser = parse([b"id: 1\n\ndata: x\nid: a\x00b\n\n"])
    assert items == [message("x", last_event_id="1")]
    assert parser.last_event_id == "1"


def test_last_id_field_of_an_event_wins() -> None:
    assert parse([b"id: 1\nid: 2\ndata: x\n\n"])[0] == [message("x", last_event_id="2")]


@pytest.mark.parametrize(
    ("value", "retry"),
    [
        (b"0", 0),
        (b"1000", 1000),
        (b"0012", 12),
        (b"99999999999999999999", 99999999999999999999),
        (b"0" * 10000 + b"7", 7),
    ],
)
def test_retry_of_ascii_digits_sets_reconnection_time(value: bytes, retry: int) -> None:
    assert parse([b"retry: " + value + b"\n\n"])[1].retry == retry


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"12a",
        b"-1",
        b"+1",
        b"1.5",
        b"1e3",
        b" 12",
        b"12 ",
        "\u0661\u0662".encode(),  # Arabic-Indic digits: str.isdigit() but not ASCII
        "\u00b2".encode(),  # superscript two
        b"9" * 10000,  # more digits than Python converts; a browser overflows
    ],
)
def test_retry_that_is_not_only_ascii_digits_is_ignored(value: bytes) -> None:
    items, parser = parse([b"retry: 5\n\nretry: " + value + b"\ndata: x\n\n"])
    assert items == [message("x")]
    assert parser.retry == 5


def test_retry_applies_at_once_even_if_the_event_never_ends() -> None:
    items, parser = parse([b"retry: 100\ndata: x\n"])
    assert items == []
    assert parser.retry == 100


def test_fresh_parser_has_no_last_event_id_and_no_retry() -> None:
    parser = EventStreamParser()
    assert parser.last_event_id == ""
    assert parser.retry is None
    assert parser.keep_comments is False


# -- comments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "text"),
    [(b": hi", "hi"), (b":hi", "hi"), (b":  hi", " hi"), (b":", ""), (b": ", ""), (b"::", ":")],
)
def test_comment_text_loses_one_leading_space(line: bytes, text: str) -> None:
    assert parse([line + b"\n"], keep_comments=True)[0] == [Comment(text)]
    assert parse([line + b"\n"])[0] == []


def test_comment_is_returned_as_soon_as_its_line_ends() -> None:
    parser = EventStreamParser(keep_comments=True)
    assert parser.feed(b": ping") == []
    assert parser.feed(b"\n") == [Comment("ping")]


def test_comments_do_not_interrupt_an_event() -> None:
    items = parse([b"data: a\n: c\ndata: b\n\n"], keep_comments=True)[0]
    assert items == [Comment("c"), message("a\nb")]


# -- decoding ---------------------------------------------------------------------------------


def test_multibyte_character_split_across_feeds_is_decoded_whole() -> None:
    stream = "data: é 漢 🎉\n\n".encode()
    for i in range(len(stream) + 1):
        assert parse([stream[:i], stream[i:]])[0] == [message("é 漢 🎉")]
    assert parse(byte_by_byte(stream))[0] == [message("é 漢 🎉")]


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"\xff", "\ufffd"),
        (b"a\x80b", "a\ufffdb"),
        (b"\xf0\x9f\x8e", "\ufffd"),  # truncated 4-byte sequence: one U+FFFD
        (b"\xed\xa0\x80", "\ufffd\ufffd\ufffd"),  # encoded surrogate: one per byte
        (b"\xc0\xaf", "\ufffd\ufffd"),  # overlong encoding
    ],
)
def test_invalid_utf8_becomes_replacement_characters(raw: bytes, text: str) -> None:
    stream = b"data: " + raw + b"\n\n"
    assert parse([stream])[0] == [message(text)]
    assert parse(byte_by_byte(stream))[0] == [message(text)]


def test_truncated_character_at_end_of_stream_is_discarded() -> None:
    assert parse([b"data: x\n\ndata: \xf0\x9f"])[0] == [message("x")]


# -- end of stream and reuse ------------------------------------------------------------------


def test_end_discards_the_unterminated_event() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"data: x\n") == []
    assert parser.end() == []
    # The new stream starts empty: its first blank line has no data to dispatch.
    assert parser.feed(b"\n") == []
    assert parser.feed(b"data: y\n\n") == [message("y")]


def test_end_keeps_last_event_id_and_retry_and_forgets_a_pending_id() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"id: 1\n\nretry: 50\nid: 2\nevent: lost\ndata: x\n") == []
    assert parser.end() == []
    assert parser.last_event_id == "1"
    assert parser.retry == 50
    assert parser.feed(b"data: y\n\n") == [message("y", last_event_id="1")]


def test_end_forgets_a_pending_cr() -> None:
    parser = EventStreamParser()
    parser.feed(b"data: a\r")
    parser.end()
    # On the new stream, a leading LF is a line end of its own, not the tail of a CRLF.
    assert parser.feed(b"\ndata: b\n\n") == [message("b")]


def test_end_forgets_a_partial_character() -> None:
    parser = EventStreamParser()
    parser.feed(b"data: \xe6\xbc")
    parser.end()
    assert parser.feed(b"data: b\n\n") == [message("b")]


def test_end_on_a_fresh_parser_returns_nothing() -> None:
    assert EventStreamParser().end() == []


# -- the values -------------------------------------------------------------------------------


def test_message_event_and_comment_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        message("x").data = "y"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Comment("x").text = "y"  # type: ignore[misc]
    assert MessageEvent("a", "b", "c") == MessageEvent(type="a", data="b", last_event_id="c")
    assert hash(Comment("x")) == hash(Comment("x"))
