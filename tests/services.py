"""Real Redis and PostgreSQL for integration tests.

Order: a throwaway container (testcontainers) when a Docker engine answers; else the service on
localhost; else skip, or fail when LAM_REQUIRE_SERVICES=1 (CI sets it: a missing service is a bug).
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Iterator

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
