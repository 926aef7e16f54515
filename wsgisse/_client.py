"""The browser client, ``wsgisse.js``, shipped in the package and served by a small WSGI app.

Three files live in ``wsgisse/static/``: ``wsgisse.js`` (an ES module),
``wsgisse.global.js`` (the same code as a classic script that defines
``window.wsgisse``, generated from the module by :func:`classic_script`) and
``wsgisse.d.ts`` (its TypeScript declarations). :class:`ClientFiles` serves them with a
strong ``ETag``, so that a browser revalidates cheaply (``304``) and always runs the
client of the installed package. :class:`~wsgisse.SSEMiddleware` and :class:`SSEApp`
serve them next to the stream: ``/events`` -> ``/events/wsgisse.js``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Final

from ._request import if_none_match, path, request_method

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["CLIENT_FILES", "ClientFiles", "classic_script", "client_file", "client_source"]

_JAVASCRIPT: Final = "text/javascript; charset=utf-8"
#: The client's file names and their media types (RFC 9239 names ``text/javascript``).
CLIENT_FILES: Final = {
    "wsgisse.js": _JAVASCRIPT,
    "wsgisse.global.js": _JAVASCRIPT,
    "wsgisse.d.ts": "application/typescript; charset=utf-8",
}
# Revalidate every time (a 304 costs one round trip): a page must never run a client
# older than the server it talks to, and the URL carries no version to bust a cache.
_CACHE_CONTROL: Final = "no-cache"


def client_source(name: str = "wsgisse.js") -> bytes:
    """The bytes of one of the client's files, to vendor it.

    The files: ``wsgisse.js`` (the ES module), ``wsgisse.global.js`` (the classic
    script) and ``wsgisse.d.ts`` (the TypeScript declarations).

    Raises:
        LookupError: ``name`` is not one of the client's files.
    """
    if name not in CLIENT_FILES:
        raise LookupError(f"no client file {name!r}; there are {sorted(CLIENT_FILES)}")
    return files("wsgisse").joinpath("static").joinpath(name).read_bytes()


def classic_script(module: str) -> str:
    """The classic-script build of the ES module ``module``: ``window.wsgisse``.

    The exports become properties of one global object, and the script's own URL (which
    a shared worker loads) is read from ``document.currentScript`` instead of
    ``import.meta``. ``make js`` writes it to ``wsgisse/static/wsgisse.global.js``.
    """
    names = re.findall(r"^export (?:const|class|function) (\w+)", module, flags=re.MULTILINE)
    body = re.sub(r"^export default \w+;\n", "", module, flags=re.MULTILINE)
    body = re.sub(r"^export (const|class|function) ", r"\1 ", body, flags=re.MULTILINE)
    body = re.sub(
        r"^const SCRIPT_URL = .*$",
        'const SCRIPT_URL = typeof document !== "undefined" && document.currentScript\n'
        "  ? document.currentScript.src\n"
        "  : String(globalThis.location && globalThis.location.href);",
        body,
        flags=re.MULTILINE,
    )
    body = re.sub(
        r'^const SCRIPT_TYPE = "module";.*$', 'const SCRIPT_TYPE = "classic";', body, flags=re.M
    )
    exported = ", ".join(names)
    return (
        "// Generated from wsgisse.js by `make js`: edit wsgisse.js instead.\n"
        "(function () {\n"
        '"use strict";\n'
        f"{body}\n"
        f"globalThis.wsgisse = Object.freeze({{ {exported} }});\n"
        "})();\n"
    )


def client_file(environ: WSGIEnvironment) -> str | None:
    """The client file a request names by its last path segment, or ``None``."""
    name = path(environ).rpartition("/")[2]
    return name if name in CLIENT_FILES else None


@cache
def _loaded(name: str) -> tuple[bytes, str]:
    body = client_source(name)
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


class ClientFiles:
    """A WSGI app serving the client's files by the last segment of ``PATH_INFO``.

    Mount it anywhere (``/static/wsgisse/`` -> ``/static/wsgisse/wsgisse.js``). GET and
    HEAD are answered with the file, ``Content-Type: text/javascript; charset=utf-8``, a
    strong ``ETag``, ``Cache-Control: no-cache`` and ``Access-Control-Allow-Origin: *``
    (the code is public; a module script of another origin needs it); a matching
    ``If-None-Match`` gets ``304``; an unknown name ``404``; another method ``405``.
    """

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request for a client file."""
        name = client_file(environ)
        if name is None:
            return _answer(start_response, "404 Not Found", b"no such client file\n")
        method = request_method(environ)
        if method not in ("GET", "HEAD"):
            return _answer(
                start_response, "405 Method Not Allowed", b"GET or HEAD\n", [("Allow", "GET, HEAD")]
            )
        body, etag = _loaded(name)
        headers = [
            ("ETag", etag),
            ("Cache-Control", _CACHE_CONTROL),
            # Public code, the same for everyone: a page of another origin may import it
            # (module scripts are fetched with CORS).
            ("Access-Control-Allow-Origin", "*"),
        ]
        wanted = if_none_match(environ)
        if etag in wanted or wanted == ["*"]:
            start_response("304 Not Modified", headers)
            return []
        start_response(
            "200 OK",
            [("Content-Type", CLIENT_FILES[name]), ("Content-Length", str(len(body))), *headers],
        )
        return [] if method == "HEAD" else [body]


def _answer(
    start_response: StartResponse,
    status: str,
    body: bytes,
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            *headers,
        ],
    )
    return [body]


def write_classic_script() -> str:
    """Write ``wsgisse.global.js`` from ``wsgisse.js`` (``make js``); return its path."""
    target = str(files("wsgisse").joinpath("static").joinpath("wsgisse.global.js"))
    source = client_source("wsgisse.js").decode()
    with open(target, "w", encoding="utf-8", newline="\n") as out:
        out.write(classic_script(source))
    return target
