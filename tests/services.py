"""Real Redis and PostgreSQL for integration tests.

Order: a throwaway container (testcontainers) when a Docker engine answers; else the service on
localhost; else skip, or fail when LAM_REQUIRE_SERVICES=1 (CI sets it: a missing service is a bug).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

LOCAL_REDIS = ("127.0.0.1", 6379)
LOCAL_POSTGRES = ("127.0.0.1", 5432)


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # no engine, no socket, no permission: all mean "no Docker here"
        return False


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def missing(service: str) -> None:
    message = f"{service} is not reachable: no Docker engine for testcontainers and nothing on localhost"
    if os.environ.get("LAM_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " (LAM_REQUIRE_SERVICES=1)")
    pytest.skip(message)


@contextlib.contextmanager
def redis_connection_string() -> Iterator[str]:
    """A Feast Redis connection string: host:port,db=N."""
    if docker_available():
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7") as container:
            yield f"{container.get_container_host_ip()}:{container.get_exposed_port(6379)},db=0"
    elif port_open(*LOCAL_REDIS):
        yield f"{LOCAL_REDIS[0]}:{LOCAL_REDIS[1]},db=0"
    else:
        missing("Redis")


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL for a PostgreSQL database the registry may create tables in."""
    if docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver="psycopg") as container:
            yield container.get_connection_url() + "?sslmode=disable"
    elif port_open(*LOCAL_POSTGRES):
        yield f"postgresql+psycopg://postgres@{LOCAL_POSTGRES[0]}:{LOCAL_POSTGRES[1]}/test?sslmode=disable"
    else:
        missing("PostgreSQL")


class RestartableRedis:
    """A Redis of the test's own that can be stopped and started again with its data (saved on shutdown)."""

    def __init__(self, start, stop, address: str) -> None:
        self._start, self._stop, self.address = start, stop, address

    @property
    def connection_string(self) -> str:
        return f"{self.address},db=0"

    def stop(self) -> None:
        self._stop()
        host, port = self.address.split(":")
        deadline = time.time() + 20
        while port_open(host, int(port)):
            assert time.time() < deadline, f"Redis at {self.address} still answers after stop"
            time.sleep(0.2)

    def start(self) -> None:
        self._start()
        host, port = self.address.split(":")
        deadline = time.time() + 30
        while not port_open(host, int(port)):
            assert time.time() < deadline, f"Redis at {self.address} did not come back"
            time.sleep(0.2)


@contextlib.contextmanager
def restartable_redis(workdir) -> Iterator[RestartableRedis]:
    """A throwaway Redis container (Docker), else a redis-server process on a free port (never the
    machine's shared Redis: the test stops it). Skips or fails like the other services when neither exists."""
    if docker_available():
        from testcontainers.redis import RedisContainer

        port = free_port()
        container = RedisContainer("redis:7").with_bind_ports(6379, port)  # fixed port: it survives a restart
        with container:
            wrapped = container.get_wrapped_container()
            redis = RestartableRedis(wrapped.start, wrapped.stop, f"{container.get_container_host_ip()}:{port}")
            redis.start()
            yield redis
        return
    binary = shutil.which("redis-server")
    if binary is None:
        missing("Redis (a restartable one: Docker or the redis-server binary)")
    port = free_port()
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(workdir),
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    process: list[subprocess.Popen] = []

    def start() -> None:
        process.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def stop() -> None:
        import redis as redis_client

        # SHUTDOWN SAVE writes dump.rdb in --dir; the next start loads it, as a restarted server would.
        with contextlib.suppress(redis_client.exceptions.ConnectionError):
            redis_client.Redis(host="127.0.0.1", port=port).shutdown(save=True)
        process[-1].wait(timeout=30)

    redis = RestartableRedis(start, stop, f"127.0.0.1:{port}")
    redis.start()
    try:
        yield redis
    finally:
        if process and process[-1].poll() is None:
            process[-1].kill()
            process[-1].wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
