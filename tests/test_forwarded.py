"""Who the client is behind proxies: the pure rule of ``_forwarded.py``, from one table.

Each case is (trusted proxies, header read, peer, header value, the client found). The
hostile cases are what a client can type into a header that a proxy then passes on with
its own entry appended on the right: garbage, ports, quoted IPv6, obfuscated names, too
many hops, nothing at all.
"""

from __future__ import annotations

from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

import wsgisse
import wsgisse._request as wsgisse_request
from wsgisse._forwarded import MAX_HOPS, TrustedProxies, forwarded_client, hops_forwarded

LOCAL = "127.0.0.1,::1"
XFF = "X-Forwarded-For"
FWD = "Forwarded"

# (trusted, header, peer, value, client)
CASES: list[tuple[str | None, str, str, str | None, str]] = [
    # No trust: the header is ignored whoever sends it.
    (None, XFF, "127.0.0.1", "203.0.113.7", "127.0.0.1"),
    # A trusted peer: the right-most untrusted entry.
    (LOCAL, XFF, "127.0.0.1", "203.0.113.7", "203.0.113.7"),
    (LOCAL, XFF, "::1", "203.0.113.7", "203.0.113.7"),
    (LOCAL, XFF, "::ffff:127.0.0.1", "203.0.113.7", "203.0.113.7"),
    # An untrusted peer forging the header: ignored.
    (LOCAL, XFF, "198.51.100.9", "203.0.113.7", "198.51.100.9"),
    # A forged entry to the left of the one the proxy appended: the proxy's entry wins.
    (LOCAL, XFF, "127.0.0.1", "1.2.3.4, 203.0.113.7", "203.0.113.7"),
    (LOCAL, XFF, "127.0.0.1", "127.0.0.1, 203.0.113.7", "203.0.113.7"),
    # A chain of trusted proxies, by network: walk past them all.
    ("10.0.0.0/8,127.0.0.1", XFF, "127.0.0.1", "203.0.113.7, 10.1.2.3, 10.9.9.9", "203.0.113.7"),
    ("fd00::/8, 127.0.0.1", XFF, "127.0.0.1", "2001:db8::1, fd12::5", "2001:db8::1"),
    # Everything trusted: the left-most entry.
    (LOCAL, XFF, "127.0.0.1", "::1, 127.0.0.1", "::1"),
    ("*", XFF, "198.51.100.9", "203.0.113.7", "203.0.113.7"),
    # Ports and brackets, as some proxies write them.
    (LOCAL, XFF, "127.0.0.1", "203.0.113.7:4711", "203.0.113.7"),
    (LOCAL, XFF, "127.0.0.1", "[2001:db8::1]:4711", "2001:db8::1"),
    (LOCAL, XFF, "127.0.0.1", "[2001:db8::1]", "2001:db8::1"),
    (LOCAL, XFF, "127.0.0.1", "2001:DB8:0:0::1", "2001:db8::1"),
    # Garbage, unknown, empty: the walk stops at the trusted proxy that wrote it.
    (LOCAL, XFF, "127.0.0.1", "not an address", "127.0.0.1"),
    (LOCAL, XFF, "127.0.0.1", "unknown", "127.0.0.1"),
    (LOCAL, XFF, "127.0.0.1", "", "127.0.0.1"),
    (LOCAL, XFF, "127.0.0.1", ",,,", "127.0.0.1"),
    (LOCAL, XFF, "127.0.0.1", "203.0.113.7,", "127.0.0.1"),
    (LOCAL, XFF, "127.0.0.1", "999.1.1.1", "127.0.0.1"),
    (LOCAL, XFF, "127.0.0.1", "203.0.113.7\x00", "127.0.0.1"),
    (LOCAL, XFF, "127.0.0.1", "1.2.3.4, garbage, 203.0.113.7", "203.0.113.7"),
    (LOCAL, XFF, "127.0.0.1", None, "127.0.0.1"),
    # Too many hops: only the right-most MAX_HOPS are read.
    (
        "*",
        XFF,
        "127.0.0.1",
        ", ".join(f"10.0.{n // 250}.{n % 250}" for n in range(5000)),
        f"10.0.{(5000 - MAX_HOPS) // 250}.{(5000 - MAX_HOPS) % 250}",
    ),
    (LOCAL, XFF, "127.0.0.1", "127.0.0.1, " * 10_000 + "203.0.113.7", "203.0.113.7"),
    # The peer itself is not an address (a UNIX socket): it is the client.
    (LOCAL, XFF, "", "203.0.113.7", ""),
    # RFC 7239 Forwarded.
    (LOCAL, FWD, "127.0.0.1", "for=203.0.113.7", "203.0.113.7"),
    (LOCAL, FWD, "127.0.0.1", "For=203.0.113.7;proto=https;by=127.0.0.1", "203.0.113.7"),
    (LOCAL, FWD, "127.0.0.1", 'for="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),
    (LOCAL, FWD, "127.0.0.1", 'for="203.0.113.7:80", for=198.51.100.4', "198.51.100.4"),
    (LOCAL, FWD, "127.0.0.1", "for=198.51.100.4, for=127.0.0.1", "198.51.100.4"),
    (LOCAL, FWD, "127.0.0.1", "for=_hidden, for=127.0.0.1", "_hidden"),
    (LOCAL, FWD, "127.0.0.1", "for=_SEVKISEK", "_SEVKISEK"),
    (LOCAL, FWD, "127.0.0.1", "for=unknown", "127.0.0.1"),
    (LOCAL, FWD, "127.0.0.1", "proto=https", "127.0.0.1"),
    (LOCAL, FWD, "127.0.0.1", "for", "127.0.0.1"),
    (LOCAL, FWD, "127.0.0.1", 'for="unterminated, for=198.51.100.4', "198.51.100.4"),
    (LOCAL, FWD, "127.0.0.1", 'for="1.2.3.4,5.6.7.8"', "127.0.0.1"),
    (LOCAL, FWD, "127.0.0.1", 'by=x;for="\\"quoted\\""', "127.0.0.1"),
    (LOCAL, FWD, "198.51.100.9", "for=203.0.113.7", "198.51.100.9"),
]


@pytest.mark.parametrize(("trusted", "header", "peer", "value", "client"), CASES)
def test_the_client_is_the_right_most_address_that_is_not_a_trusted_proxy(
    trusted: str | None, header: str, peer: str, value: str | None, client: str
) -> None:
    proxies = None if trusted is None else TrustedProxies(trusted, header=header)
    assert forwarded_client(peer, value, proxies) == client
    # The same through the public function and a real environ.
    environ: dict[str, Any] = {"REMOTE_ADDR": peer}
    setup_testing_defaults(environ)
    environ["REMOTE_ADDR"] = peer
    if value is not None:
        environ["HTTP_FORWARDED" if header == FWD else "HTTP_X_FORWARDED_FOR"] = value
    assert wsgisse.client_address(environ, proxies) == client


def test_only_the_named_header_is_read() -> None:
    environ = {"REMOTE_ADDR": "127.0.0.1", "HTTP_FORWARDED": "for=1.2.3.4"}
    assert wsgisse.client_address(environ, LOCAL) == "127.0.0.1"
    environ = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "1.2.3.4"}
    forwarded = TrustedProxies(LOCAL, header="Forwarded")
    assert wsgisse.client_address(environ, forwarded) == "127.0.0.1"


def test_proxies_are_given_as_a_string_or_a_list_and_matched_by_network() -> None:
    proxies = TrustedProxies(["10.0.0.0/8", " ::1 ", ""])
    assert "10.200.3.4" in proxies
    assert "::1" in proxies
    assert "[::1]:80" in proxies
    assert "11.0.0.1" not in proxies
    assert "::2" not in proxies
    assert "garbage" not in proxies
    assert 127 not in proxies
    assert repr(TrustedProxies("127.0.0.1")) == (
        "TrustedProxies('127.0.0.1/32', header='x-forwarded-for')"
    )


@pytest.mark.parametrize("bad", ["localhost", "10.0.0.0/33", "1.2.3", "::g"])
def test_an_entry_that_is_not_an_address_is_refused_when_configured(bad: str) -> None:
    with pytest.raises(ValueError, match="neither an IP address nor a CIDR network"):
        TrustedProxies(f"127.0.0.1,{bad}")


def test_only_the_two_headers_can_be_named() -> None:
    with pytest.raises(ValueError, match="X-Forwarded-For"):
        TrustedProxies("127.0.0.1", header="X-Real-IP")


def test_forwarded_elements_split_on_commas_outside_quotes_only() -> None:
    assert hops_forwarded('for="a,b";proto=http, for=c') == ["a,b", "c"]
    assert hops_forwarded("") == []


# -- what the endpoint and the integrations do with it ---------------------------------------

FORGED = {"X-Forwarded-For": "203.0.113.7"}


def _seen_by_authorize(app: Any, peer: str, path: str = "/events") -> tuple[int, list[str]]:
    """Stream once from ``peer`` with FORGED, and return the status and what the hook saw."""
    from wsgisse.testing import SSETestClient  # noqa: PLC0415

    with SSETestClient(app).stream(path, headers=FORGED, environ={"REMOTE_ADDR": peer}) as r:
        return r.status_code, list(SEEN)


SEEN: list[str] = []


@pytest.fixture(autouse=True)
def _clear_seen() -> None:
    SEEN.clear()


def _hook(environ: Any, channels: tuple[str, ...]) -> bool:
    SEEN.append(environ[wsgisse_request.CLIENT_ADDRESS_KEY])
    return True


@pytest.mark.parametrize(
    ("peer", "client"), [("127.0.0.1", "203.0.113.7"), ("198.51.100.9", "198.51.100.9")]
)
def test_the_authorize_hook_reads_the_client_address_the_endpoint_found(
    peer: str, client: str
) -> None:
    assert wsgisse_request.CLIENT_ADDRESS_KEY == "wsgisse.client_address"
    app = wsgisse.SSEApp(wsgisse.Channel(), authorize=_hook, trusted_proxies="127.0.0.1")
    assert _seen_by_authorize(app, peer) == (200, [client])


def test_without_trusted_proxies_the_hook_sees_the_peer() -> None:
    app = wsgisse.SSEApp(wsgisse.Channel(), authorize=_hook)
    assert _seen_by_authorize(app, "127.0.0.1") == (200, ["127.0.0.1"])


def test_the_per_client_cap_counts_the_forwarded_client() -> None:
    from wsgisse.testing import SSETestClient  # noqa: PLC0415

    app = wsgisse.SSEApp(
        wsgisse.Channel(), max_connections_per_client=1, trusted_proxies=["127.0.0.1"]
    )
    client = SSETestClient(app)
    peer = {"REMOTE_ADDR": "127.0.0.1"}
    with (
        client.stream("/events", headers={"X-Forwarded-For": "203.0.113.1"}, environ=peer) as a,
        client.stream("/events", headers={"X-Forwarded-For": "203.0.113.2"}, environ=peer) as b,
        client.stream("/events", headers={"X-Forwarded-For": "203.0.113.1"}, environ=peer) as c,
    ):
        assert a.status_code == b.status_code == 200
        # Not a browser (no Accept: text/event-stream): told 503, come back later.
        assert c.status_code == 503
        assert app.connected == 2


def test_the_flask_extension_takes_wsgisse_trusted_proxies() -> None:
    from flask import Flask, request  # noqa: PLC0415

    from wsgisse.integrations.flask import SSE  # noqa: PLC0415

    def authorize(channels: tuple[str, ...]) -> bool:
        SEEN.append(request.environ["wsgisse.client_address"])
        return True

    app = Flask(__name__)
    app.config["WSGISSE_TRUSTED_PROXIES"] = "127.0.0.1, ::1"
    SSE(app, authorize=authorize)
    assert _seen_by_authorize(app, "::1") == (200, ["203.0.113.7"])


def test_the_bottle_plugin_takes_trusted_proxies() -> None:
    import bottle  # noqa: PLC0415

    from wsgisse.integrations.bottle import SSEPlugin  # noqa: PLC0415

    def authorize(channels: tuple[str, ...]) -> bool:
        SEEN.append(bottle.request.environ["wsgisse.client_address"])
        return True

    app = bottle.Bottle()
    app.install(SSEPlugin(authorize=authorize, trusted_proxies="127.0.0.0/8"))
    assert _seen_by_authorize(app, "127.0.0.5") == (200, ["203.0.113.7"])
