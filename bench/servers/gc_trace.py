"""Run a module with its garbage-collection pauses traced (``--gc-trace``; diagnostic only).

Usage: ``python -m bench.servers.gc_trace OUT.jsonl MODULE [ARGS…]`` runs ``python -m MODULE ARGS…``
in this process, timing every collection with ``gc.callbacks``. Every full (generation 2)
collection and every pause of 5 ms or more is appended to OUT.jsonl as it happens; totals per
generation are appended at exit. Used to see our server's GC pauses, which it does not expose.

With ``GC_TRACE_CENSUS=1`` each traced young collection also records what generation 0 held
when it started: object count, the commonest types, and the containers with the most referents
(to see *why* a collection was slow; the census itself is not counted in the pause).
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import runpy
import sys
import time
from collections import Counter
from typing import Any

CENSUS = bool(os.environ.get("GC_TRACE_CENSUS"))


def census(generation: int) -> dict[str, Any]:
    """What generations 0..`generation` hold right now (diagnostic; costs milliseconds)."""
    objects = [o for g in range(generation + 1) for o in gc.get_objects(g)]
    types = Counter(type(o).__name__ for o in objects)
    widest = sorted(((len(gc.get_referents(o)), type(o).__name__) for o in objects),
                    reverse=True)[:5]
    edges = sum(len(gc.get_referents(o)) for o in objects)
    del objects
    return {"objects": sum(types.values()), "edges": edges, "types": types.most_common(8),
            "widest": widest}


class Tracer:
    """Times collections and writes them to a JSON-lines file."""

    def __init__(self, path: str) -> None:
        self.out = open(path, "a", buffering=1)  # noqa: SIM115 - closed at exit
        self.started = 0.0
        self.census: dict[str, Any] | None = None
        self.counts = [0, 0, 0]
        self.total_ms = [0.0, 0.0, 0.0]
        self.max_ms = [0.0, 0.0, 0.0]

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            # young collections only: a census of the older generations takes seconds
            self.census = census(0) if CENSUS and info.get("generation") == 0 else None
            self.started = time.perf_counter()
            return
        ms = (time.perf_counter() - self.started) * 1000.0
        gen = int(info.get("generation", 0))
        self.counts[gen] += 1
        self.total_ms[gen] += ms
        self.max_ms[gen] = max(self.max_ms[gen], ms)
        if gen == 2 or ms >= 5.0:
            row = {"t": time.time(), "gen": gen, "ms": round(ms, 3),
                   "collected": info.get("collected")}
            if self.census is not None:
                row["census"] = self.census
            self.out.write(json.dumps(row) + "\n")

    def close(self) -> None:
        self.out.write(json.dumps({"summary": True, "t": time.time(), "counts": self.counts,
                                   "total_ms": [round(x, 1) for x in self.total_ms],
                                   "max_ms": [round(x, 2) for x in self.max_ms]}) + "\n")
        self.out.close()


def read(path: str) -> dict[str, Any] | None:
    """Summarise a trace file: full collections, their pauses, and the long ones with times."""
    try:
        with open(path) as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
    except (OSError, ValueError):
        return None
    events = [r for r in rows if not r.get("summary")]
    full = [r["ms"] for r in events if r["gen"] == 2]
    summary = next((r for r in reversed(rows) if r.get("summary")), None)
    return {
        "full_collections": len(full),
        "full_pause_max_ms": round(max(full), 1) if full else None,
        "full_pause_mean_ms": round(sum(full) / len(full), 1) if full else None,
        "pauses_5ms_or_more": len(events),
        "events": events[-100:],
        "totals": summary,
    }


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    tracer = Tracer(sys.argv[1])
    module = sys.argv[2]
    sys.argv = [module, *sys.argv[3:]]
    gc.callbacks.append(tracer)
    atexit.register(tracer.close)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
