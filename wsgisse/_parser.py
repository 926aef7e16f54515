"""EventStreamParser: the bytes of a ``text/event-stream`` in, events out, as a browser.

The parser follows WHATWG HTML §9.2.6 "Interpreting an event stream" step by step, over
the grammar of §9.2.5 "Parsing an event stream", so that what it returns is what an
``EventSource`` in a browser would dispatch for the same bytes. It is sans-IO: it never
reads a socket, starts a thread or looks at a clock; the caller feeds it bytes.
"""

from __future__ import annotations

import codecs
import contextlib
import re
from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["Comment", "EventStreamParser", "MessageEvent", "ParsedItem"]

# §9.2.5: a line ends at CRLF, a lone LF or a lone CR, and nowhere else.
_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """An event a browser's ``EventSource`` dispatches (§9.2.6 "dispatch the event").

    Attributes:
        type: the event type: the last ``event`` field of the event, or ``"message"``
            when there was none or it was empty.
        data: the ``data`` fields joined with LF.
        last_event_id: the stream's last event ID when the event was dispatched: the last
            ``id`` field seen so far in the stream, not necessarily one of this event.
    """

    type: str
    data: str
    last_event_id: str


@dataclass(frozen=True, slots=True)
class Comment:
    """A comment line (one starting with ``:``), which browsers ignore.

    Attributes:
        text: what follows the colon, with one leading space removed.
    """

    text: str


ParsedItem: TypeAlias = MessageEvent | Comment
"""What :meth:`EventStreamParser.feed` returns a list of."""


class EventStreamParser:
    """Turn the bytes of an event stream into the events a browser would dispatch.

    Feed it bytes in chunks of any size, split anywhere (inside a UTF-8 character,
    between the CR and LF of a CRLF); the events returned are the same as for the whole
    stream fed at once, and each is returned as soon as its last byte arrives. The stream
    is decoded as UTF-8 with U+FFFD for invalid bytes, and one leading byte order mark is
    dropped (§9.2.5, the UTF-8 decode algorithm). Malformed input never raises: like a
    browser, the parser ignores what it cannot use. It holds a line that has not ended yet
    in memory however long it grows, as a browser does: read streams from servers you
    trust, or bound what you feed it.

    Args:
        keep_comments: also return comment lines, as :class:`Comment`, in stream order.
            Browsers drop them; a test may want to see heartbeats.

    Attributes:
        last_event_id: the stream's last event ID (``""`` at first): set from the last
            ``id`` field each time an empty line ends an event, even an event that
            dispatches nothing (§9.2.6).
        retry: the last reconnection time (``retry`` field, in milliseconds), or ``None``
            while the stream has sent none. A ``retry`` takes effect as soon as its line
            ends, even in an event that is never dispatched.
        keep_comments: as given.
    """

    __slots__ = (
        "_data",
        "_decoder",
        "_event_type",
        "_id_buffer",
        "_pending",
        "_skip_lf",
        "keep_comments",
        "last_event_id",
        "retry",
    )

    def __init__(self, *, keep_comments: bool = False) -> None:
        self.keep_comments = keep_comments
        self.last_event_id = ""
        self.retry: int | None = None
        # "utf-8-sig" drops one BOM at the start of the stream, even split across chunks,
        # and only that one; "replace" is the UTF-8 decode algorithm's error mode.
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")("replace")
        self._pending: list[str] = []  # pieces of the line not ended yet
        self._skip_lf = False  # the last chunk ended in CR: an LF next completes a CRLF
        self._data: list[str] = []  # the data buffer, kept as its lines
        self._event_type = ""
        self._id_buffer = ""

    def feed(self, data: bytes) -> list[ParsedItem]:
        """Parse the next chunk of the stream; return what it completes, in order.

        Returns:
            the :class:`MessageEvent` dispatched by each empty line in the chunk (and each
            comment line, as a :class:`Comment`, when ``keep_comments``). A line not yet
            ended is kept for the next call.
        """
        text = self._decoder.decode(data)
        if not text:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        if "\r" in text:
            lines = _LINE_END.split(text)
            # A CR that ends the chunk has ended a line already; the LF that may follow it
            # in the next chunk belongs to the same line end.
            self._skip_lf = text[-1] == "\r"
        elif "\n" in text:
            lines = text.split("\n")
        else:
            # No line end: keep the piece without joining, so that a long line fed in
            # small chunks costs linear time.
            self._pending.append(text)
            return []
        if self._pending:
            self._pending.append(lines[0])
            lines[0] = "".join(self._pending)
            self._pending.clear()
        tail = lines.pop()
        if tail:
            self._pending.append(tail)
        return self._interpret(lines)

    def end(self) -> list[ParsedItem]:
        """State that the stream has ended, and get the parser ready for the next one.

        Whatever follows the last empty line is discarded, as a browser does (§9.2.6:
        "If the file ends in the middle of an event, before the final empty line, the
        incomplete event is not dispatched"), so this always returns ``[]``; it returns a
        list so that callers can treat it like :meth:`feed`.

        The parser can then be fed a new stream, as a reconnecting ``EventSource`` reads
        its new response: a BOM is again dropped at its start and the buffers start
        empty, but ``last_event_id`` and ``retry`` carry over, since they belong to the
        ``EventSource`` (§9.2.2) rather than to one response. An ``id`` field read in the
        discarded event is forgotten, since no empty line applied it.
        """
        self._decoder.reset()
        self._pending.clear()
        self._skip_lf = False
        self._data.clear()
        self._event_type = ""
        self._id_buffer = self.last_event_id
        return []

    def _interpret(self, lines: list[str]) -> list[ParsedItem]:
        """Apply §9.2.6 to each complete line, in order."""
        out: list[ParsedItem] = []
        data = self._data
        for line in lines:
            if not line:
                # Dispatch. The last event ID is set even when nothing is dispatched.
                self.last_event_id = self._id_buffer
                if data:
                    # Joining the lines is the data buffer minus its one trailing LF.
                    out.append(
                        MessageEvent(
                            self._event_type or "message", "\n".join(data), self.last_event_id
                        )
                    )
                    data.clear()
                self._event_type = ""
                continue
            if line[0] == ":":
                if self.keep_comments:
                    out.append(Comment(line[2:] if line[1:2] == " " else line[1:]))
                continue
            name, colon, value = line.partition(":")
            if colon and value[:1] == " ":
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                self._event_type = value
            elif name == "id":
                if "\0" not in value:
                    self._id_buffer = value
            elif name == "retry" and value.isascii() and value.isdigit():
                self._set_retry(value)
            # Any other field is ignored.
        return out

    def _set_retry(self, digits: str) -> None:
        # Python refuses to convert more than sys.get_int_max_str_digits() digits (4300 by
        # default). Such a delay is meaningless, and a browser keeps the delay in a
        # fixed-size integer, so the field is ignored rather than crash the parser.
        with contextlib.suppress(ValueError):
            self.retry = int(digits.lstrip("0") or "0")
