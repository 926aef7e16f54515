"""ServerSentEvent: one event of a ``text/event-stream``, validated when built.

The wire format is the one a browser's ``EventSource`` reads: WHATWG HTML §9.2.5 "Parsing
an event stream" (the grammar) and §9.2.6 "Interpreting an event stream" (what each line
means). This module is pure: no I/O, no thread, no clock.

Every encoded event is written the same way, each line ending in LF::

    : COMMENT LINE      one per line of the comment
    event: NAME
    retry: MILLISECONDS
    data: LINE          one per line of data
    id: ID              last, so a frame's body is everything before its id line
                        an empty line: every frame ends in exactly one

Every value is written after ``": "`` (a colon and one space). The parser removes exactly
one space after the colon (§9.2.6), so a value that itself starts with a space or a colon
reaches the browser intact, and an empty value is written ``"data: "``, ``": "``.
"""

from __future__ import annotations

import json
from typing import Final

from ._errors import InvalidEventError

__all__ = [
    "MAX_RETRY",
    "ServerSentEvent",
    "is_event_body",
    "relabel",
    "with_id_line",
]

MAX_RETRY: Final = 2**31 - 1
"""The largest ``retry`` accepted, in milliseconds (about 24.8 days).

It is the largest delay a browser timer holds (a signed 32-bit count of milliseconds, the
``long`` timeout of HTML §8.6 "Timers"); a larger reconnection time is meaningless, and
may overflow in the client.
"""


def _lines(prefix: str, text: str) -> str:
    """Write ``text`` as one ``prefix`` line per line of it, each ending in LF.

    Lines end at CRLF, CR or LF, exactly the line ends of §9.2.5, and nowhere else:
    ``str.splitlines`` would also split at U+000B, U+000C, U+001C-U+001E, U+0085, U+2028
    and U+2029, which a browser keeps inside a line.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return prefix + text.replace("\n", "\n" + prefix) + "\n"


def _check_text(field: str, value: object) -> str:
    """Return ``value`` as a plain ``str``, or raise InvalidEventError naming ``field``."""
    if not isinstance(value, str):
        raise InvalidEventError(field, value, f"must be a str, not {type(value).__name__}")
    # A str subclass is stored as the plain str it holds, so the event stays a plain value.
    return str.__str__(value)


def _convert_data(data: object) -> str:
    """Turn the ``data`` argument into the text that is sent; see ServerSentEvent."""
    if isinstance(data, str):
        return str.__str__(data)
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidEventError("data", data, f"bytes are not valid UTF-8 ({exc})") from exc
    try:
        # allow_nan=False: NaN and Infinity are not JSON, and JSON.parse() refuses them.
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidEventError("data", data, f"cannot be encoded as JSON ({exc})") from exc


def _check_event(event: object) -> str:
    event = _check_text("event", event)
    if "\r" in event or "\n" in event:
        raise InvalidEventError("event", event, "must not contain CR or LF")
    return event


def _check_id(id_: object) -> str:
    id_ = _check_text("id", id_)
    if "\r" in id_ or "\n" in id_ or "\0" in id_:
        # A browser ignores an id holding NUL (§9.2.6): refuse it rather than send an id
        # the client would silently drop.
        raise InvalidEventError("id", id_, "must not contain CR, LF or NUL")
    return id_


def _check_retry(retry: object) -> int:
    if not isinstance(retry, int) or isinstance(retry, bool):
        raise InvalidEventError("retry", retry, f"must be an int, not {type(retry).__name__}")
    if not 0 <= retry <= MAX_RETRY:
        raise InvalidEventError("retry", retry, f"must be in 0..{MAX_RETRY}")
    return int(retry)  # an int subclass (an IntEnum) is stored as a plain int


def _build_frame(
    data: str | None, event: str | None, id_: str | None, retry: int | None, comment: str | None
) -> bytes:
    """Write the fields in the documented order; the module docstring shows it."""
    parts: list[str] = []
    if comment is not None:
        parts.append(_lines(": ", comment))
    if event is not None:
        parts.append(f"event: {event}\n")
    if retry is not None:
        parts.append(f"retry: {retry}\n")
    if data is not None:
        parts.append(_lines("data: ", data))
    if id_ is not None:
        parts.append(f"id: {id_}\n")
    parts.append("\n")
    return _encode_utf8(
        "".join(parts), (("data", data), ("event", event), ("id", id_), ("comment", comment))
    )


def _encode_utf8(text: str, fields: tuple[tuple[str, str | None], ...]) -> bytes:
    """Encode a whole frame; on a lone surrogate, name the field that holds it."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        for field, value in fields:
            if value is None:
                continue
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidEventError(
                    field, value, "contains a lone surrogate, which UTF-8 cannot carry"
                ) from exc
        raise  # pragma: no cover - the frame is made only of the fields checked above


def with_id_line(body: bytes, event_id: str) -> bytes:
    """The frame of an encoded event that has no id (``body``) once given ``event_id``.

    The id line comes last (see the module docstring), so it goes in just before the
    frame's closing empty line: the body's own bytes are shared, never re-encoded.
    ``event_id`` must have passed the id check (no CR, LF or NUL).
    """
    return b"%sid: %s\n\n" % (body[:-1], event_id.encode())


def relabel(frame: bytes, event_id: str) -> bytes:
    """``frame`` (which ends with its id line) with that id replaced by ``event_id``."""
    return b"%sid: %s\n\n" % (frame[: frame.rindex(b"\nid: ") + 1], event_id.encode())


def is_event_body(body: bytes) -> bool:
    """Whether ``body`` can be an encoded event without an id: non-empty, and ending in
    the one empty line that closes every frame (``with_id_line`` relies on it)."""
    return len(body) > 1 and body.endswith(b"\n\n")


def _rebuild(
    data: str | None,
    event: str | None,
    id: str | None,
    retry: int | None,
    comment: str | None,
) -> ServerSentEvent:
    """Unpickle a ServerSentEvent (see ``ServerSentEvent.__reduce__``)."""
    return ServerSentEvent(data, event=event, id=id, retry=retry, comment=comment)


class ServerSentEvent:
    """One server-sent event: a frozen value, validated when built, ready to ``encode()``.

    Args:
        data: the event's data. A ``str`` is sent as is (a ``str`` subclass as the plain
            ``str`` it holds); a bytes-like object (``bytes``, ``bytearray``,
            ``memoryview``) must be UTF-8 and is decoded strictly; anything else
            (``dict``, ``list``, ``int``, ``float``, ``bool``, ...) is encoded once as
            compact JSON (``separators=(",", ":")``, ``ensure_ascii=False``,
            ``allow_nan=False``). ``None`` (the default) means no data field: the browser
            then dispatches no ``message`` event, but still applies ``id`` and ``retry``
            (§9.2.6). To send JSON ``null``, pass ``"null"``. Line breaks (CRLF, CR, LF)
            split the data into several ``data:`` lines and reach the browser as LF; the
            format cannot carry a CR.
        event: the event type. The browser dispatches the event under this name, and
            under ``"message"`` when it is ``None`` or ``""`` (§9.2.6).
        id: the event id: the browser sends it back in ``Last-Event-ID`` when it
            reconnects (§9.2.4). ``""`` is a real value: it resets the browser's last
            event ID.
        retry: the reconnection time in milliseconds, ``0`` to ``MAX_RETRY``.
        comment: text sent as comment lines, which browsers ignore (§9.2.6). It may hold
            line breaks.

    Attributes ``data`` (the text after conversion, or ``None``), ``event``, ``id``,
    ``retry`` and ``comment`` are read-only. Two events are equal when they put the same
    fields on the wire: ``ServerSentEvent(b"1") == ServerSentEvent(1) ==
    ServerSentEvent("1")``.

    Raises:
        InvalidEventError: a field the format cannot carry, with ``.field`` naming it:
            ``event`` with a CR or LF; ``id`` with a CR, LF or NUL; ``retry`` that is not
            an ``int`` (``bool`` included) in ``0..MAX_RETRY``; ``data`` that is invalid
            UTF-8 bytes or not JSON-serialisable (the ``TypeError`` or ``ValueError`` is
            chained); ``event``, ``id`` or ``comment`` that is not a ``str`` (this is an
            ``InvalidEventError``, a ``ValueError``, rather than a ``TypeError``, so that
            one ``except`` catches every bad event); any text field holding a lone
            surrogate, which UTF-8 cannot carry; and an event with no field at all
            (field ``"event"``), which would put nothing on the wire but a blank line.
    """

    __slots__ = ("_comment", "_data", "_event", "_frame", "_id", "_retry")

    _data: str | None
    _event: str | None
    _id: str | None
    _retry: int | None
    _comment: str | None
    _frame: bytes

    def __init__(
        self,
        data: object = None,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        comment: str | None = None,
    ) -> None:
        # Optional fields are compared with ``is None``: "0", 0 and "" are real values.
        text = None if data is None else _convert_data(data)
        event = None if event is None else _check_event(event)
        id = None if id is None else _check_id(id)
        retry = None if retry is None else _check_retry(retry)
        comment = None if comment is None else _check_text("comment", comment)
        if text is None and event is None and id is None and retry is None and comment is None:
            raise InvalidEventError("event", None, "an event needs at least one field")
        # The frame is built once, here: encode() is then free, and an event that exists
        # can always be sent.
        frame = _build_frame(text, event, id, retry, comment)

        setattr_ = object.__setattr__
        setattr_(self, "_data", text)
        setattr_(self, "_event", event)
        setattr_(self, "_id", id)
        setattr_(self, "_retry", retry)
        setattr_(self, "_comment", comment)
        setattr_(self, "_frame", frame)

    @property
    def data(self) -> str | None:
        """The data as sent (after bytes decoding or JSON encoding), or ``None``."""
        return self._data

    @property
    def event(self) -> str | None:
        """The event type, or ``None`` (the browser then uses ``"message"``)."""
        return self._event

    @property
    def id(self) -> str | None:
        """The event id, or ``None`` (the browser's last event ID is then unchanged)."""
        return self._id

    @property
    def retry(self) -> int | None:
        """The reconnection time in milliseconds, or ``None``."""
        return self._retry

    @property
    def comment(self) -> str | None:
        """The comment text, or ``None``."""
        return self._comment

    def encode(self) -> bytes:
        """Return the event as UTF-8 bytes for a ``text/event-stream`` body.

        The bytes are computed once when the event is built; every call returns them. They
        end with exactly one empty line, so frames can be concatenated.
        """
        return self._frame

    def _fields(self) -> tuple[str | None, str | None, str | None, int | None, str | None]:
        return (self._data, self._event, self._id, self._retry, self._comment)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServerSentEvent):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        args = [] if self._data is None else [repr(self._data)]
        for name, value in (
            ("event", self._event),
            ("id", self._id),
            ("retry", self._retry),
            ("comment", self._comment),
        ):
            if value is not None:
                args.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(args)})"

    def _identified(self, id: str) -> ServerSentEvent:
        """This event (which has no id) with ``id``, which the caller has validated.

        The id line comes last on the wire, so the frame is this one's plus that line:
        a channel returns the event it sent without encoding it a second time.
        """
        identified = object.__new__(ServerSentEvent)
        setattr_ = object.__setattr__
        for name in ("_data", "_event", "_retry", "_comment"):
            setattr_(identified, name, getattr(self, name))
        setattr_(identified, "_id", id)
        setattr_(identified, "_frame", with_id_line(self._frame, id))
        return identified

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot delete {name!r}")

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # The frozen __setattr__ would break pickle's default slot restore: rebuild instead.
        return (_rebuild, self._fields())
