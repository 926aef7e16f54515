"""A real PostgreSQL for the Django tests: Debian's server, in a temporary folder.

``initdb`` and ``postgres`` refuse to run as root, so as root they run as the
``postgres`` user (which Debian's package makes) through ``setpriv``; for anyone else,
as themselves. The server listens on 127.0.0.1 and a free port only (its Unix socket in
its own folder), trusts local connections (a test database, never a real one), and is
stopped by its own pid with a fast shutdown (SIGINT), which does not wait for clients.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Final

import psycopg
from _servers import HOST, ProgramMissingError, ServerProcess, free_port

__all__ = ["PostgresServer", "postgres_bin"]

#: Room for the connections a broken stream view would hold (200 streams): a leak
#: shows as a count, not as "too many clients" errors.
MAX_CONNECTIONS: Final = 300


def postgres_bin(name: str) -> str:
    """The path of a PostgreSQL server program (``initdb``, ``postgres``).

    Raises:
        ProgramMissingError: Debian's ``postgresql`` package is not installed.
    """
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]  # the newest major version
    path = shutil.which(name)
    if path is None:
        raise ProgramMissingError(
            f"{name} not found: install Debian's postgresql package (make system-deps)"
        )
    return path


def _as_postgres() -> list[str]:
    # setpriv execs the program (runuser would stay its parent and keep signals from it).
    as_user = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
    return as_user if os.geteuid() == 0 else []


class PostgresServer(ServerProcess):
    """A PostgreSQL server of its own; ready when it accepts a connection.

    Attributes:
        dsn: a libpq connection string for its ``postgres`` database.
        url: ``postgres://postgres@127.0.0.1:PORT/postgres`` (the example's
            ``$EXAMPLE_DATABASE``).
    """

    def __init__(self, port: int | None = None) -> None:
        port = free_port() if port is None else port
        self.folder = Path(tempfile.mkdtemp(prefix="wsgisse-postgres-"))
        data = self.folder / "data"
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        subprocess.run(
            [
                *_as_postgres(),
                postgres_bin("initdb"),
                "--pgdata",
                str(data),
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--no-sync",
                "--encoding",
                "UTF8",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        argv = [
            *_as_postgres(),
            postgres_bin("postgres"),
            "-D",
            str(data),
            "-h",
            HOST,
            "-p",
            str(port),
            "-k",
            str(self.folder),
            "-c",
            f"max_connections={MAX_CONNECTIONS}",
            "-c",
            "fsync=off",
        ]
        super().__init__(argv, port=port, name="postgres", scheme="postgres", cwd=self.folder)
        self.dsn = f"host={HOST} port={port} user=postgres dbname=postgres connect_timeout=2"

    @property
    def url(self) -> str:
        """``postgres://postgres@127.0.0.1:PORT/postgres``."""
        return f"postgres://postgres@{self.host}:{self.port}/postgres"

    def _is_ready(self) -> bool:
        try:
            with psycopg.connect(self.dsn):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int | None:
        """Fast shutdown: SIGINT ends the server without waiting for its clients."""
        return super().stop(sig, timeout)

    def connections(self) -> int:
        """How many client connections the server has now, besides this query's own."""
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            ).fetchone()
        assert row is not None
        return int(row[0])

    def close(self) -> None:
        """Stop the server and remove its folder."""
        try:
            super().close()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
