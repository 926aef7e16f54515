"""Who the client is behind proxies: ``X-Forwarded-For`` and ``Forwarded`` (RFC 7239).

Pure: strings in, an address out; :mod:`wsgisse._request` feeds it from the environ.

A proxy appends the address of the peer it received the request from to the header it
forwards, so the header's right-most entry was written by the nearest proxy and every
entry to its left by the proxy before. Only an entry written by a proxy we trust can be
believed; anything to the left of the first address that is not a trusted proxy may have
been typed by the client. Hence the rule (gunicorn's ``forwarded_allow_ips``, Werkzeug's
``ProxyFix`` and nginx's ``real_ip_recursive`` follow it too): start from the TCP peer;
while the address in hand is a trusted proxy, step one entry to the left; the client is
the first address that is not a trusted proxy.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Final

__all__ = [
    "MAX_HOPS",
    "TrustedProxies",
    "forwarded_client",
    "hops_forwarded",
    "hops_x_forwarded",
    "trusted_proxies_from",
]

#: The most entries read from the right of a forwarding header. A chain of more trusted
#: proxies than this is unheard of; the bound keeps a hostile header of thousands of
#: entries from costing time on every stream request.
MAX_HOPS: Final = 32
#: The longest header value read: longer values are cut from the left, where the
#: entries that the walk from the right never reaches are.
MAX_HEADER_LENGTH: Final = 4096

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# RFC 7239 section 6.3: an obfuscated node name, e.g. "_hidden" or "_SEVKISEK".
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]{1,64}")
# "[2001:db8::1]:4711", "[2001:db8::1]", "192.0.2.1:8080".
_BRACKETED = re.compile(r"\[([0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?)\](?::\d{1,5})?")
_V4_PORT = re.compile(r"(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}")
# One parameter of a forwarded-element: token=token or token="quoted string".
_PAIR = re.compile(r'\s*([A-Za-z0-9!#$%&\'*+.^_`|~-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,"\s]*)\s*')


def _address(text: str) -> _Address | None:
    """An IP address, without brackets or port; ``None`` if ``text`` is not one."""
    text = text.strip()
    bracketed = _BRACKETED.fullmatch(text)
    if bracketed:
        text = bracketed.group(1)
    else:
        with_port = _V4_PORT.fullmatch(text)
        if with_port:
            text = with_port.group(1)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """The proxies whose forwarding headers are believed, by address or network.

    Args:
        proxies: addresses and CIDR networks, IPv4 or IPv6 (``"127.0.0.1"``,
            ``"10.0.0.0/8"``, ``"::1"``, ``"fd00::/8"``), as an iterable or as one
            comma-separated string (gunicorn's ``forwarded_allow_ips`` form). ``"*"``
            trusts every peer: only for a server that nothing but the proxy can reach.
        header: which header the proxies write: ``"X-Forwarded-For"`` (what nginx's
            ``$proxy_add_x_forwarded_for`` and Caddy's ``reverse_proxy`` send) or
            ``"Forwarded"`` (RFC 7239). Only one is read: a proxy passes the other on
            untouched, as the client wrote it.

    Raises:
        ValueError: an entry is neither an address nor a network, or ``header`` is
            neither of the two.
    """

    def __init__(self, proxies: str | Iterable[str], *, header: str = "X-Forwarded-For") -> None:
        entries = proxies.split(",") if isinstance(proxies, str) else list(proxies)
        networks: list[_Network] = []
        self.trust_all = False
        for entry in (str(item).strip() for item in entries):
            if not entry:
                continue
            if entry == "*":
                self.trust_all = True
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(
                    f"trusted proxy {entry!r} is neither an IP address nor a CIDR network"
                ) from None
        self.networks: tuple[_Network, ...] = tuple(networks)
        canonical = header.strip().lower()
        if canonical not in ("x-forwarded-for", "forwarded"):
            raise ValueError(f"header must be 'X-Forwarded-For' or 'Forwarded', not {header!r}")
        #: ``"x-forwarded-for"`` or ``"forwarded"``.
        self.header = canonical

    def __contains__(self, address: object) -> bool:
        """Whether ``address`` (a string, as a peer or header gives it) is trusted."""
        parsed = _address(address) if isinstance(address, str) else None
        if parsed is None:
            return False
        if self.trust_all:
            return True
        return any(parsed.version == net.version and parsed in net for net in self.networks)

    def __repr__(self) -> str:
        shown = [*(["*"] if self.trust_all else []), *(str(net) for net in self.networks)]
        return f"TrustedProxies({','.join(shown)!r}, header={self.header!r})"


def _tail(value: str) -> tuple[str, bool]:
    """The last :data:`MAX_HEADER_LENGTH` characters, and whether any were cut."""
    return value[-MAX_HEADER_LENGTH:], len(value) > MAX_HEADER_LENGTH


def trusted_proxies_from(
    value: TrustedProxies | str | Iterable[str] | None,
) -> TrustedProxies | None:
    """``value`` as :class:`TrustedProxies` (``None`` stays ``None``: trust no proxy).

    Raises:
        ValueError: an entry is neither an address nor a network.
    """
    return value if value is None or isinstance(value, TrustedProxies) else TrustedProxies(value)


def hops_x_forwarded(value: str) -> list[str]:
    """The entries of an ``X-Forwarded-For`` value, nearest last (at most :data:`MAX_HOPS`)."""
    tail, cut = _tail(value)
    entries = [entry.strip() for entry in tail.split(",")]
    # A cut leaves part of an entry on the left ("110.0.0.1" as "10.0.0.1"): a name
    # nobody wrote, so read it as one that cannot be parsed.
    if cut:
        entries[0] = ""
    return entries[-MAX_HOPS:]


def hops_forwarded(value: str) -> list[str]:
    """The ``for=`` values of a ``Forwarded`` value, nearest last (at most :data:`MAX_HOPS`).

    An element without ``for=``, or one that does not parse, counts as an entry that
    names nobody (``""``): the walk stops there, as at any entry it cannot read.
    """
    tail, cut = _tail(value)
    hops: list[str] = []
    # Commas inside quoted strings do not separate elements.
    for element in re.findall(r'(?:[^,"]|"(?:[^"\\]|\\.)*")+', tail):
        found = ""
        for pair in element.split(";"):
            match = _PAIR.fullmatch(pair)
            if match is None:
                found = ""
                break
            name, raw = match.group(1).lower(), match.group(2)
            if name == "for":
                found = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw
        hops.append(found)
    if cut and hops:
        hops[0] = ""  # Part of an element, as in hops_x_forwarded.
    return hops[-MAX_HOPS:]


def forwarded_client(peer: str, header: str | None, trusted: TrustedProxies | None) -> str:
    """The client's address: the right-most one that is not a trusted proxy.

    ``peer`` is the TCP peer (``REMOTE_ADDR``); ``header`` the value of the header that
    ``trusted`` names (``None`` if absent). Without ``trusted``, or when the peer is not
    a trusted proxy, the header is ignored and the peer is the client. An entry that is
    not an address (``unknown``, garbage) ends the walk at the trusted proxy that wrote
    it: the client cannot be known better than that. An obfuscated identifier
    (``_hidden``, RFC 7239 section 6.3) is the client's identity as given. When every
    entry is a trusted proxy, the left-most one read is the client.

    Returns the address in its canonical form (``::ffff:10.0.0.1`` as ``10.0.0.1``).
    """
    peer_address = _address(peer)
    current = peer if peer_address is None else str(peer_address)
    if trusted is None or not header or current not in trusted:
        return current
    hops = hops_forwarded(header) if trusted.header == "forwarded" else hops_x_forwarded(header)
    for entry in reversed(hops):
        if _OBFUSCATED.fullmatch(entry):
            return entry
        address = _address(entry)
        if address is None:
            return current
        current = str(address)
        if current not in trusted:
            return current
    return current
