"""Redis Cluster: three masters (``redis-server --cluster-enabled yes``, joined with
``redis-cli --cluster create``) on free ports; channels spread over the shards.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis
import redis.cluster
from _servers import HOST, ServerProcess, find_program, free_port

import wsgisse
from wsgisse import Channel, SSEApp
from wsgisse.backends.redis_cluster import RedisClusterBackend
from wsgisse.testing import SSETestClient, wait_until

if TYPE_CHECKING:
    from conftest import StartServer

pytestmark = pytest.mark.redis

READER = "wsgisse redis reader"


def answers_ping(server: ServerProcess) -> bool:
    try:
        with redis.Redis(host=HOST, port=server.port, socket_timeout=1) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def cluster_ok(port: int) -> bool:
    with redis.Redis(host=HOST, port=port, socket_timeout=2, decode_responses=True) as client:
        text = str(client.execute_command("CLUSTER", "INFO", NEVER_DECODE=True).decode())
    return "cluster_state:ok" in text and "cluster_slots_assigned:16384" in text


def start_cluster(
    tmp_path: Path, start_server: StartServer, nodes: int = 3, replicas: int = 0
) -> list[ServerProcess]:
    """``nodes`` cluster nodes, ``replicas`` per master, all 16384 slots, ready on each."""
    started = []
    for number in range(nodes):
        port = free_port()
        folder = tmp_path / f"node-{number}"
        folder.mkdir()
        argv = [find_program("redis-server"), "--port", str(port), "--bind", HOST]
        argv += ["--cluster-enabled", "yes", "--cluster-config-file", str(folder / "nodes.conf")]
        argv += ["--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no"]
        # The bus port defaults to port + 10000, which a free port may not allow.
        argv += ["--cluster-port", str(free_port()), "--dir", str(folder)]
        started.append(
            start_server(
                ServerProcess(argv, port=port, name=f"cluster-{number}", ready=answers_ping)
            )
        )
    create = [find_program("redis-cli"), "--cluster", "create"]
    create += [f"{HOST}:{node.port}" for node in started]
    create += ["--cluster-replicas", str(replicas), "--cluster-yes"]
    subprocess.run(create, check=True, capture_output=True, timeout=60)
    for node in started:
        wait_until(lambda port=node.port: cluster_ok(port), 30.0, "the cluster ok on each node")
    return started


@pytest.fixture
def cluster(tmp_path: Path, start_server: StartServer) -> list[ServerProcess]:
    """Three masters holding all 16384 slots, ready on every node."""
    return start_cluster(tmp_path, start_server)


@pytest.fixture
def backends(
    make_cluster_backend: Callable[..., RedisClusterBackend],
) -> Callable[..., RedisClusterBackend]:
    return make_cluster_backend


def reader_count() -> int:
    return len([t for t in threading.enumerate() if t.name == READER])


@pytest.mark.slow
def test_channels_spread_over_the_shards_each_read_once_per_bucket(
    cluster: list[ServerProcess], backends: Callable[..., RedisClusterBackend]
) -> None:
    url = f"redis://{HOST}:{cluster[0].port}/0"
    backend = backends(url)
    publisher = backends(f"redis://{HOST}:{cluster[1].port}/0")
    names = [f"room-{n}" for n in range(12)]
    with redis.cluster.RedisCluster(host=HOST, port=cluster[0].port) as inspect:
        owners = {name: inspect.get_node_from_key(backend.stream_key(name)).port for name in names}
    assert len(set(owners.values())) >= 2, owners  # Spread over several shards.
    buckets = {id(backend.bucket(name)) for name in names}
    channels = [Channel(name, backend=backend) for name in names]
    subscriptions = [channel.subscribe() for channel in channels]
    try:
        assert reader_count() == len(buckets)  # One reader per bucket in use.
        sent: dict[str, list[str]] = {name: [] for name in names}
        for round_number in range(3):
            for name in names:
                event = Channel(name, backend=publisher).publish({"round": round_number})
                sent[name].append(event.id or "")
        for name, subscription in zip(names, subscriptions, strict=True):
            received = b""
            while received.count(b"\n\n") < 3:
                received += subscription.get(timeout=10)
            ids = [line[4:].decode() for line in received.split(b"\n") if line.startswith(b"id: ")]
            assert ids == sent[name]
    finally:
        for subscription in subscriptions:
            subscription.close()
    # A channel attached later is seeded from its shard and resumes exactly.
    late = Channel(names[0], backend=backends(url))
    with late.subscribe(last_event_id=sent[names[0]][0]) as resumed:
        replay = b""
        while replay.count(b"\n\n") < 2:
            replay += resumed.get(timeout=10)
    assert [line[4:].decode() for line in replay.split(b"\n") if line.startswith(b"id: ")] == (
        sent[names[0]][1:]
    )


@pytest.mark.slow
def test_a_revoke_reaches_every_bucket_and_publish_once_holds_on_a_cluster(
    cluster: list[ServerProcess], backends: Callable[..., RedisClusterBackend]
) -> None:
    url = f"redis://{HOST}:{cluster[0].port}/0"
    backend = backends(url)
    channels = {name: Channel(name, backend=backend) for name in ("a", "b", "c", "d")}
    endpoint = SSEApp(channels, authorize=lambda environ, names: "mallory", heartbeat=1.0)
    client = SSETestClient(endpoint)
    admin = backends(f"redis://{HOST}:{cluster[2].port}/0")
    with (
        client.stream("/events?channel=a&channel=b") as first,
        client.stream("/events?channel=c") as second,
        client.stream("/events?channel=d") as third,
    ):
        once = admin.publish_once(Channel("d", backend=admin), "k", {"n": 1})
        assert admin.publish_once(Channel("d", backend=admin), "k", {"n": 1}) == once
        assert third.next_event().last_event_id == once.id
        admin.revoke(user="mallory")
        for stream in (first, second, third):
            assert [e.type for e in stream.read_to_end(timeout=10)] == [wsgisse.END_EVENT]


def move_slot(nodes: list[ServerProcess], slot: int, source: int, target: int) -> None:
    """Migrate ``slot`` (its keys too) from node ``source`` to node ``target`` (ports)."""
    clients = {node.port: redis.Redis(host=HOST, port=node.port) for node in nodes}
    try:
        ids = {port: c.execute_command("CLUSTER", "MYID").decode() for port, c in clients.items()}
        clients[target].execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
        clients[source].execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
        while keys := clients[source].execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            clients[source].execute_command("MIGRATE", HOST, target, "", 0, 5000, "KEYS", *keys)
        for client in clients.values():
            client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target])
    finally:
        for client in clients.values():
            client.close()


@pytest.mark.slow
def test_a_bucket_moved_to_another_shard_is_followed_without_loss_or_repeat(
    cluster: list[ServerProcess], backends: Callable[..., RedisClusterBackend]
) -> None:
    url = f"redis://{HOST}:{cluster[0].port}/0"
    backend = backends(url)
    publisher = backends(url, publish_retries=20, retry_delay=0.25)
    channel, out = Channel("news", backend=backend), Channel("news", backend=publisher)
    key = backend.stream_key("news")
    with redis.cluster.RedisCluster(host=HOST, port=cluster[0].port) as inspect:
        slot = inspect.keyslot(key)
        source = inspect.get_node_from_key(key).port
    target = next(node.port for node in cluster if node.port != source)
    with channel.subscribe() as subscription:
        before = [out.publish({"n": n}).id for n in range(5)]
        move_slot(cluster, slot, source, target)
        after = [out.publish({"n": n}).id for n in range(5, 10)]
        received = b""
        while received.count(b"\n\n") < 10:
            received += subscription.get(timeout=15)
        ids = [line[4:].decode() for line in received.split(b"\n") if line.startswith(b"id: ")]
        assert ids == before + after  # Each once, in order, across the move.
    with redis.cluster.RedisCluster(host=HOST, port=cluster[0].port) as inspect:
        assert inspect.get_node_from_key(key).port == target


def owner_port(port: int, key: str) -> int:
    with redis.cluster.RedisCluster(host=HOST, port=port) as inspect:
        return int(inspect.get_node_from_key(key).port)


def replica_of(master: int) -> int | None:
    """The port of ``master``'s replica once it is in sync, else ``None``."""
    with redis.Redis(host=HOST, port=master, decode_responses=True) as client:
        master_id = client.execute_command("CLUSTER", "MYID")
        lines = client.execute_command("CLUSTER", "REPLICAS", master_id)
    if not lines:
        return None
    port = int(str(lines[0]).split()[1].split("@")[0].rsplit(":", 1)[1])
    with redis.Redis(host=HOST, port=port, decode_responses=True) as client:
        in_sync = client.info("replication").get("master_link_status") == "up"
    return port if in_sync else None


@pytest.mark.slow
def test_a_shard_failover_to_its_replica_is_followed_without_loss_or_repeat(
    tmp_path: Path, start_server: StartServer, backends: Callable[..., RedisClusterBackend]
) -> None:
    nodes = start_cluster(tmp_path, start_server, nodes=6, replicas=1)
    url = f"redis://{HOST}:{nodes[0].port}/0"
    backend = backends(url)
    publisher = backends(url, publish_retries=40, retry_delay=0.25)
    channel, out = Channel("news", backend=backend), Channel("news", backend=publisher)
    key = backend.stream_key("news")
    master = owner_port(nodes[0].port, key)
    wait_until(lambda: replica_of(master) is not None, 30.0, "the master's replica in sync")
    replica = replica_of(master)
    assert replica is not None
    with channel.subscribe() as subscription:
        before = [out.publish({"n": n}).id for n in range(5)]
        with redis.Redis(host=HOST, port=replica) as client:
            assert client.execute_command("CLUSTER", "FAILOVER")  # Coordinated: no loss.
        began = time.monotonic()
        wait_until(lambda: owner_port(nodes[0].port, key) == replica, 30.0, "the promotion")
        promoted = time.monotonic() - began
        after = [out.publish({"n": n}).id for n in range(5, 10)]
        published = time.monotonic()
        received = b""
        while received.count(b"\n\n") < 10:
            received += subscription.get(timeout=15)
        followed = time.monotonic() - published
    ids = [line[4:].decode() for line in received.split(b"\n") if line.startswith(b"id: ")]
    assert ids == before + after  # Each once, in order, across the failover.
    print(
        f"cluster failover: replica promoted {promoted:.2f} s after CLUSTER FAILOVER; "
        f"the publishes after it took {published - began - promoted:.2f} s; the last "
        f"reached the subscriber {followed:.2f} s after"
    )
