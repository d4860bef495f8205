"""The embedded Redis keeps what it holds across a restart when durable (``make run``): the
broker's queued tasks are in it. The tests' throwaway Redis does not (issue 15, fault 3)."""

from __future__ import annotations

import pytest
import redis

from assistant.devstack.launcher import start_redis
from assistant.devstack.processes import Children
from tests.support.processes import free_port

pytestmark = pytest.mark.slow


def restart_with_a_queued_task(tmp_path, *, durable: bool) -> list[bytes]:
    """Queues a message, restarts the Redis as an operator would (SIGTERM, same port and
    folder), and returns what the queue holds afterwards."""
    env = {"EMBEDDED_REDIS_PORT": str(free_port())}
    children = Children()
    try:
        start_redis(tmp_path, env, children, durable=durable)
        redis.Redis.from_url(env["REDIS_URL"]).lpush("ingest", b"index source 7")
        children.stop_all()
        env.pop("REDIS_URL")
        start_redis(tmp_path, env, children, durable=durable)
        return redis.Redis.from_url(env["REDIS_URL"]).lrange("ingest", 0, -1)
    finally:
        children.stop_all()


def test_a_restarted_embedded_redis_still_holds_the_queued_tasks(tmp_path):
    assert restart_with_a_queued_task(tmp_path, durable=True) == [b"index source 7"]
    assert list(tmp_path.glob("appendonly*"))


def test_the_tests_throwaway_redis_keeps_nothing(tmp_path):
    assert restart_with_a_queued_task(tmp_path, durable=False) == []
    assert not list(tmp_path.glob("appendonly*"))
