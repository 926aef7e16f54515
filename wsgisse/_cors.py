"""Cross-origin EventSource: which origins may read a stream, and the headers that say so.

Pure: given the request's ``Origin`` (and, for a preflight, what it asks to send), it
returns the headers to add, or ``None`` to refuse. A browser sends a plain
``EventSource`` GET without preflight; it preflights only when a page adds headers of its
own (a polyfill sending ``Authorization``, say). ``new EventSource(url,
{withCredentials: true})`` sends cookies and requires an exact origin and
``Access-Control-Allow-Credentials: true`` in return: the fetch standard refuses ``*``
together with credentials, so this policy never sends both.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["CORS"]

_SAFE_REQUEST_HEADERS = ("Last-Event-ID", "Cache-Control", "Accept")


class CORS:
    """Which origins may read an event stream from another origin.

    Args:
        origins: the allowed origins, exactly as browsers send them
            (``"https://app.example"``: scheme, host and port, no path), or ``"*"`` for
            any origin.
        allow_credentials: let pages send cookies (``withCredentials: true``). Refused
            together with ``"*"``.
        allow_headers: request headers a page may send besides ``Last-Event-ID``,
            ``Cache-Control`` and ``Accept``.
        max_age: how long, in seconds, a browser may cache a preflight answer.

    Raises:
        ValueError: ``"*"`` with credentials, or an origin with a path or a trailing slash.
    """

    def __init__(
        self,
        origins: Iterable[str] | str,
        *,
        allow_credentials: bool = False,
        allow_headers: Iterable[str] = (),
        max_age: int = 600,
    ) -> None:
        allowed = frozenset([origins] if isinstance(origins, str) else origins)
        if "*" in allowed and allow_credentials:
            raise ValueError(
                "CORS: '*' cannot go with credentials (the fetch standard refuses it); "
                "list the origins"
            )
        for origin in allowed - {"*"}:
            if origin.count("/") != 2 or origin.endswith("/"):  # noqa: PLR2004 - "scheme://"
                raise ValueError(f"CORS: {origin!r} is not an origin like 'https://host:port'")
        self.any_origin = "*" in allowed
        self.origins = allowed - {"*"}
        self.allow_credentials = allow_credentials
        self.allow_headers = (*_SAFE_REQUEST_HEADERS, *allow_headers)
        self.max_age = max_age

    def allows(self, origin: str) -> bool:
        """Whether pages from ``origin`` may read the stream."""
        return self.any_origin or origin in self.origins

    def response_headers(self, origin: str | None) -> list[tuple[str, str]] | None:
        """The CORS headers for a stream request from ``origin``.

        ``[]`` for a same-origin request (no ``Origin`` header), ``None`` when the origin
        is not allowed.
        """
        if origin is None:
            return []
        if not self.allows(origin):
            return None
        if self.any_origin:
            return [("Access-Control-Allow-Origin", "*")]
        headers = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
        if self.allow_credentials:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        return headers

    def preflight_headers(
        self, origin: str | None, method: str | None
    ) -> list[tuple[str, str]] | None:
        """The answer headers to a preflight (``OPTIONS``), or ``None`` to refuse it."""
        base = self.response_headers(origin)
        if not base or (method or "").upper() not in ("GET", "HEAD"):
            return None
        return [
            *base,
            ("Access-Control-Allow-Methods", "GET, HEAD"),
            ("Access-Control-Allow-Headers", ", ".join(self.allow_headers)),
            ("Access-Control-Max-Age", str(self.max_age)),
        ]
