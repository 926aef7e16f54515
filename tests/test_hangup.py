"""The hang-up watch: a client that leaves is noticed without a write."""

from __future__ import annotations

import socket
import threading

import pytest

from wsgisse._hangup import watch
from wsgisse.testing import wait_until

pytestmark = pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="Linux only")


def watcher_running() -> bool:
    return any(thread.name == "wsgisse hang-up watch" for thread in threading.enumerate())


def test_a_peer_that_closes_is_reported_once_and_the_watch_thread_then_ends() -> None:
    server_side, client_side = socket.socketpair()
    hung_up = threading.Event()
    calls: list[int] = []
    try:
        watch(server_side, lambda: (calls.append(1), hung_up.set()))
        assert watcher_running()
        client_side.close()
        assert hung_up.wait(3)
        wait_until(lambda: not watcher_running(), timeout=5, message="the thread ended")
        assert calls == [1]
    finally:
        server_side.close()


def test_data_from_the_peer_is_not_a_hang_up() -> None:
    server_side, client_side = socket.socketpair()
    hung_up = threading.Event()
    try:
        unwatch = watch(server_side, hung_up.set)
        client_side.sendall(b"a pipelined byte")
        assert not hung_up.wait(1.5)
        unwatch()
    finally:
        server_side.close()
        client_side.close()


def test_an_unwatched_socket_is_not_reported() -> None:
    server_side, client_side = socket.socketpair()
    hung_up = threading.Event()
    try:
        unwatch = watch(server_side, hung_up.set)
        unwatch()
        unwatch()  # idempotent
        client_side.close()
        assert not hung_up.wait(1.5)
    finally:
        server_side.close()


def test_a_closed_socket_is_not_watched() -> None:
    server_side, client_side = socket.socketpair()
    server_side.close()
    client_side.close()
    unwatch = watch(server_side, lambda: None)
    unwatch()
