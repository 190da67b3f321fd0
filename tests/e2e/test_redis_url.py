"""REDIS_URL (Heroku sets it with a Redis add-on) switches the store to Redis, under both entry
points; an unreachable Redis stops start-up with one line (password hidden), exit status 1."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.server import free_port

from .helpers import wait_record

pytestmark = pytest.mark.timeout(90)


def test_redis_url_switches_the_store_to_redis(make_server, connect, unique, redis_server):
    server = make_server(env={"REDIS_URL": redis_server.url})
    health = server.get("/health")
    assert health["status"] == "ok" and health["store"]["kind"] == "redis"
    name = unique("heroku")
    client = connect(server.url, auth={"clientName": name})
    assert client.heartbeat(name)["status"] == "ok"
    wait_record(server, name, "online")
    fields = redis_server.client().hgetall(f"{{presence}}:client:{name}")
    assert fields[b"status"] == b"online" and fields[b"node"] == b"test-node"
    assert server.stop() == 0
    assert not (server.workdir / "presence.db").exists()  # the embedded store was not used


def test_redis_url_under_the_procfile_command(make_server, redis_server):
    server = make_server(procfile=True, env={"REDIS_URL": redis_server.url})
    assert server.get("/health")["store"]["kind"] == "redis"
    assert server.stop() == 0


def test_an_unreachable_redis_stops_start_up_with_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": "redis://:s3cret-pw@127.0.0.1:1/0",
           "PORT": str(free_port()), "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "presence_server"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    output = done.stdout + done.stderr
    assert "cannot reach Redis at redis://:***@127.0.0.1:1/0" in output
    assert "s3cret-pw" not in output and "Traceback" not in output


def test_redis_sentinel_url_finds_the_master(make_server, connect, unique, redis_server,
                                            tmp_path):
    """`redis+sentinel://host:port/service`: the store asks a real Sentinel for the master."""
    import subprocess as processes

    from tests.support.redis_server import redis_binary
    from tests.support.server import wait_for

    if redis_server.external:
        pytest.skip("needs the private redis-server (PRESENCE_TEST_REDIS_URL is set)")
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                    f"sentinel monitor mymaster 127.0.0.1 {redis_server.port} 1\n")
    sentinel = processes.Popen([redis_binary(), str(conf), "--sentinel"],
                               stdout=processes.DEVNULL, stderr=processes.STDOUT)
    try:
        import redis

        probe = redis.Redis(port=port, socket_timeout=1)
        wait_for(lambda: _master_known(probe), 10, message="sentinel knows the master")
        server = make_server(env={"REDIS_URL": f"redis+sentinel://127.0.0.1:{port}/mymaster"})
        assert server.get("/health")["store"]["kind"] == "redis"
        name = unique("sentinel")
        connect(server.url, auth={"clientName": name})
        wait_record(server, name, "online")
        assert redis_server.client().hget(f"{{presence}}:client:{name}", "status") == b"online"
    finally:
        sentinel.kill()
        sentinel.wait(10)


def _master_known(probe) -> bool:
    try:
        return probe.execute_command("SENTINEL", "get-master-addr-by-name", "mymaster") is not None
    except Exception:
        return False
