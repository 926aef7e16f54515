"""nginx and Caddy in front of a WSGI server, configured from the recipes in deploy/.

Each proxy is a :class:`_servers.ServerProcess`: a subprocess on 127.0.0.1 and a free
port, in a folder of its own (its configuration, pid file, logs and temporary files),
started with a bounded wait (ready once a TLS handshake on its port negotiates HTTP/2)
and stopped by its own pid. The configuration is the recipe's own file, with its
``{{PLACEHOLDERS}}`` filled in (and, for a test that needs a broken proxy, a named line
replaced): what the tests prove is what deploy/ ships.

The certificate is self-signed and made by the ``openssl`` program; a browser is told to
trust exactly that key (:attr:`Certificate.spki_sha256`, for Chromium's
``--ignore-certificate-errors-spki-list``), nothing else.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from _servers import (
    HOST,
    REPO_ROOT,
    ServerProcess,
    find_program,
    free_port,
    self_signed_certificate,
)

__all__ = [
    "DEPLOY_DIR",
    "CaddyProxy",
    "Certificate",
    "HttpsStream",
    "NginxProxy",
    "caddy_proxy",
    "make_certificate",
    "negotiated_protocol",
    "nginx_proxy",
    "render",
]

DEPLOY_DIR: Final = REPO_ROOT / "deploy"

# openssl reads a key in a few hundredths of a second.
_OPENSSL_TIMEOUT: Final = 30.0
# One TLS handshake while a proxy starts.
_HANDSHAKE_TIMEOUT: Final = 1.0
# How long a stream read waits when the caller names no timeout.
_READ_TIMEOUT: Final = 10.0

_PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")


def render(
    template: Path, values: Mapping[str, str], edits: Mapping[str, str] | None = None
) -> str:
    """Return ``template``'s text with each ``{{NAME}}`` replaced by ``values[NAME]``.

    ``edits`` maps a piece of the template's text to its replacement, applied first: a
    test that needs a misconfigured proxy names the recipe's own line it changes.

    Raises:
        ValueError: an edit's text is not in the template, a placeholder has no value, or
            a value names no placeholder (the recipe and its callers drifted apart).
    """
    text = template.read_text()
    for old, new in (edits or {}).items():
        if old not in text:
            raise ValueError(f"{template}: {old!r} is not in the recipe")
        text = text.replace(old, new)
    names = set(_PLACEHOLDER.findall(text))
    if names != set(values):
        raise ValueError(
            f"{template}: placeholders {sorted(names)}, but values for {sorted(values)}"
        )
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


# -- the certificate -------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 and its key (PEM files)."""

    cert: Path
    key: Path
    #: base64 of the SHA-256 of the certificate's public key (its DER SubjectPublicKeyInfo):
    #: what Chromium's ``--ignore-certificate-errors-spki-list`` takes.
    spki_sha256: str


def _openssl(*args: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(
        [find_program("openssl"), *args],
        input=stdin,
        capture_output=True,
        timeout=_OPENSSL_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"openssl {' '.join(args)} failed ({result.returncode}): "
            f"{result.stderr.decode(errors='replace')}"
        )
    return result.stdout


def make_certificate(folder: Path) -> Certificate:
    """Make a self-signed certificate for 127.0.0.1 in ``folder``; see :class:`Certificate`."""
    cert, key = self_signed_certificate(folder, HOST)
    public_key = _openssl("x509", "-in", str(cert), "-noout", "-pubkey")
    spki = _openssl("pkey", "-pubin", "-outform", "DER", stdin=public_key)
    digest = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    return Certificate(cert=cert, key=key, spki_sha256=digest)


def _client_context(alpn: list[str]) -> ssl.SSLContext:
    # The proxies' certificate is self-signed: these clients check what was negotiated
    # and what arrives, not who signed it.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(alpn)
    return context


def negotiated_protocol(port: int, timeout: float = _HANDSHAKE_TIMEOUT) -> str | None:
    """Shake hands with ``127.0.0.1:port`` offering h2 and http/1.1; return the choice.

    Returns ``None`` when nothing listens or the handshake fails.
    """
    try:
        with (
            socket.create_connection((HOST, port), timeout=timeout) as raw,
            _client_context(["h2", "http/1.1"]).wrap_socket(raw, server_hostname=HOST) as tls,
        ):
            return tls.selected_alpn_protocol()
    except OSError:
        return None


def _speaks_http2(server: ServerProcess) -> bool:
    return negotiated_protocol(server.port) == "h2"


# -- the proxies -----------------------------------------------------------------------------


class _Proxy(ServerProcess):
    """A proxy with a folder of its own, made at its first start, removed by close()."""

    kind = "proxy"

    def __init__(self, upstream: str, certificate: Certificate, port: int | None = None) -> None:
        self.upstream = upstream
        self.certificate = certificate
        self.folder: Path | None = None
        port = free_port() if port is None else port
        super().__init__(
            [self.kind], port=port, name=self.kind, scheme="https", ready=_speaks_http2
        )

    def _configure(self, folder: Path) -> list[str]:
        """Write the configuration into ``folder``; return the command that runs it."""
        raise NotImplementedError

    def start(self) -> _Proxy:
        if self.folder is None and not self._closed:
            self.folder = Path(tempfile.mkdtemp(prefix=f"wsgisse-{self.kind}-"))
            # nginx's workers run as nobody when it is started as root: they must be able
            # to reach their temporary files. Nothing secret is kept here but the test's
            # throwaway key, which only the master reads.
            self.folder.chmod(0o755)
            self.argv = self._configure(self.folder)
        super().start()
        return self

    def __enter__(self) -> _Proxy:
        return self.start()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)
                self.folder = None


class NginxProxy(_Proxy):
    """nginx configured by deploy/nginx/wsgisse.conf, HTTP/2 and TLS on its port.

    It runs in the foreground (``daemon off``) under its own prefix folder, which holds
    its pid file, logs and temporary files; :meth:`output` includes its error log.
    """

    kind = "nginx"

    def __init__(
        self,
        upstream: str,
        certificate: Certificate,
        port: int | None = None,
        edits: Mapping[str, str] | None = None,
    ) -> None:
        self.edits = dict(edits or {})
        super().__init__(upstream, certificate, port)

    def _configure(self, folder: Path) -> list[str]:
        for sub in ("conf", "logs", "temp"):
            (folder / sub).mkdir(mode=0o755)
        (folder / "conf" / "nginx.conf").write_text(
            render(DEPLOY_DIR / "nginx" / "nginx.conf", {"PREFIX": str(folder)})
        )
        (folder / "conf" / "wsgisse.conf").write_text(
            render(
                DEPLOY_DIR / "nginx" / "wsgisse.conf",
                {
                    "UPSTREAM": self.upstream,
                    "LISTEN": f"{HOST}:{self.port}",
                    "SERVER_NAME": HOST,
                    "CERTIFICATE": str(self.certificate.cert),
                    "CERTIFICATE_KEY": str(self.certificate.key),
                },
                self.edits,
            )
        )
        return [find_program("nginx"), "-p", str(folder), "-c", "conf/nginx.conf"]

    def output(self) -> str:
        """What nginx wrote to stderr (before its configuration is read), and its error log."""
        text = super().output()
        if self.folder is not None:
            with contextlib.suppress(FileNotFoundError):
                log = (self.folder / "logs" / "error.log").read_text(errors="replace")
                text += f"--- logs/error.log\n{log}"
        return text


class CaddyProxy(_Proxy):
    """Caddy configured by deploy/caddy/Caddyfile, HTTP/2 and TLS on its port.

    Its home, configuration and data folders are its own folder, so that it writes
    nothing outside it; the recipe's global options turn off its admin endpoint, ACME and
    trust-store installation, so it opens no other port and reaches no network.
    """

    kind = "caddy"

    def _configure(self, folder: Path) -> list[str]:
        caddyfile = folder / "Caddyfile"
        caddyfile.write_text(
            render(
                DEPLOY_DIR / "caddy" / "Caddyfile",
                {
                    "SITE": f"https://{HOST}:{self.port}",
                    "UPSTREAM": self.upstream,
                    "CERTIFICATE": str(self.certificate.cert),
                    "CERTIFICATE_KEY": str(self.certificate.key),
                },
            )
        )
        self.env = {
            **(self.env or os.environ),
            "HOME": str(folder),
            "XDG_CONFIG_HOME": str(folder / "config"),
            "XDG_DATA_HOME": str(folder / "data"),
        }
        return [find_program("caddy"), "run", "--config", str(caddyfile), "--adapter", "caddyfile"]


def nginx_proxy(
    upstream: str,
    certificate: Certificate,
    *,
    port: int | None = None,
    edits: Mapping[str, str] | None = None,
) -> NginxProxy:
    """An :class:`NginxProxy` to ``upstream`` (``host:port``), not started yet."""
    return NginxProxy(upstream, certificate, port, edits)


def caddy_proxy(upstream: str, certificate: Certificate, *, port: int | None = None) -> CaddyProxy:
    """A :class:`CaddyProxy` to ``upstream`` (``host:port``), not started yet."""
    return CaddyProxy(upstream, certificate, port)


# -- a raw client ----------------------------------------------------------------------------


class HttpsStream:
    """A GET over TLS and HTTP/1.1 whose raw bytes are read as they arrive, with deadlines.

    For what a browser cannot show: that a proxy sent nothing at all, not even headers.
    The request asks for compression (``Accept-Encoding: gzip, br, zstd``) as a browser
    does.
    """

    def __init__(self, url: str, *, timeout: float = _READ_TIMEOUT) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or parts.hostname is None or parts.port is None:
            raise ValueError(f"HttpsStream needs an https://host:port/ URL, not {url!r}")
        self.timeout = timeout
        #: Every byte received so far, headers included.
        self.received = bytearray()
        #: Whether the server closed the connection.
        self.ended = False
        raw = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        self._sock = _client_context(["http/1.1"]).wrap_socket(raw, server_hostname=HOST)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._sock.sendall(
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Accept: text/event-stream\r\nCache-Control: no-cache\r\n"
            "Accept-Encoding: gzip, br, zstd\r\n\r\n".encode()
        )

    def read_until(self, needle: bytes, timeout: float | None = None) -> bool:
        """Read until ``needle`` has been received; return whether it was, in ``timeout``.

        Returns ``False`` when ``timeout`` passes or the server closes the connection
        (:attr:`ended`) first.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while needle not in self.received:
            if self.ended:
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._sock.settimeout(remaining)
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                return False
            except ConnectionResetError:
                data = b""
            if not data:
                self.ended = True
                return False
            self.received += data
        return True

    def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> HttpsStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
