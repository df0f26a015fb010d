"""Load benchmark of the dispatch service: a real server on loopback, concurrent clients.

Starts ``python -m eqglb.service`` (uvicorn, one process) on a free loopback port with a
fresh database, submits slots of the built-in scenario (10 data centres x 10 regions x 4
models) from each number of concurrent clients in ``--concurrency`` (default 1, 8 and 32,
one after another on the same server) until ``--requests`` decisions are made or
``--duration`` seconds have passed, and reports decisions/s and latency percentiles per
concurrency as a table.
Every request is a full decision: validated, decided by the online policy, committed to
SQLite (WAL, ``--synchronous``) before the response.

Slots after the first carry no time stamp (the server assigns the next slot), so
concurrent clients never race on slot order; each request has its own idempotency key.

Clients: ``raw`` (default) is a minimal HTTP/1.1 keep-alive client on asyncio streams, so
the measuring side takes little of the machine's CPU; ``httpx`` uses httpx.AsyncClient.

Measured: see docs/service.md (goal of issue 13: >= 1,000 decisions/s and p99 < 25 ms at
concurrency 1, 8 and 32 with synchronous=FULL on the 2-core machine).

Usage::

    python benchmarks/bench_service.py                     # 2000 requests at 1, 8, 32
    python benchmarks/bench_service.py --requests 5000 --concurrency 32 --client httpx
    python benchmarks/bench_service.py --synchronous normal --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def slot_bodies(n: int, days: int = 7) -> list[dict]:
    """Bodies of ``n`` slots cycling over the built-in scenario's signals."""
    from eqglb.builtin import builtin_scenario

    sc = builtin_scenario(days=days)
    out = []
    for t in range(n):
        r = t % sc.n_time
        b = {
            "demand": dict(zip(sc.regions, sc.demand[r].tolist(), strict=True)),
            "price": dict(zip(sc.datacenters, sc.price[r].tolist(), strict=True)),
            "carbon_intensity": dict(
                zip(sc.datacenters, sc.carbon_intensity[r].tolist(), strict=True)
            ),
            "wue": dict(zip(sc.datacenters, sc.wue[r].tolist(), strict=True)),
        }
        if sc.health_cost is not None:  # the optional signal, when the scenario has it
            b["health_cost"] = dict(zip(sc.datacenters, sc.health_cost[r].tolist(), strict=True))
        if t == 0:
            b["time"] = sc.time[0].isoformat()
        out.append(b)
    return out


def start_server(
    db: Path, port: int, synchronous: str, days: int, extra: list[str]
) -> subprocess.Popen:
    env = dict(os.environ, EQGLB_TOKEN=TOKEN)
    cmd = [
        sys.executable,
        "-m",
        "eqglb.service",
        "--db",
        str(db),
        "--port",
        str(port),
        "--horizon",
        "10000000",
        "--days",
        str(days),
        "--synchronous",
        synchronous,
        "--log-level",
        "warning",
        *extra,
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start within 60 s")


# --------------------------------------------------------------------------- clients
class RawClient:
    """Minimal HTTP/1.1 keep-alive client (one connection) on asyncio streams."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: 127.0.0.1:{self.port}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
        ]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        assert self.reader is not None
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        data = await self.reader.readexactly(length)
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class HttpxClient:
    def __init__(self, port: int) -> None:
        import httpx

        self.c = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        r = await self.c.post(
            path, content=body, headers={"Content-Type": "application/json", **headers}
        )
        return r.status_code, r.content

    async def close(self) -> None:
        await self.c.aclose()


async def load(
    port: int,
    bodies: list[bytes],
    start: int,
    n: int,
    duration: float,
    concurrency: int,
    client: str,
) -> tuple[list[float], dict[int, int], float]:
    """Submit bodies[start:start+n] from ``concurrency`` clients; latencies [s]."""
    nxt = start
    stop_at = start + n
    lat: list[float] = []
    status: dict[int, int] = {}
    t_end = time.perf_counter() + duration
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def worker() -> None:
        nonlocal nxt
        cl = RawClient(port) if client == "raw" else HttpxClient(port)
        try:
            while True:
                i = nxt
                if i >= stop_at or time.perf_counter() > t_end:
                    return
                nxt += 1
                t0 = time.perf_counter()
                code, _ = await cl.post(
                    "/v1/slots", bodies[i], {**auth, "Idempotency-Key": f"bench-{i}"}
                )
                lat.append(time.perf_counter() - t0)
                status[code] = status.get(code, 0) + 1
        finally:
            await cl.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return lat, status, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--requests", type=int, default=2000, help="decisions to request per concurrency"
    )
    ap.add_argument(
        "--duration", type=float, default=60.0, help="time limit of the load per concurrency [s]"
    )
    ap.add_argument(
        "--concurrency",
        type=_levels,
        default=[1, 8, 32],
        help="concurrent clients, comma-separated levels (default 1,8,32)",
    )
    ap.add_argument("--warmup", type=int, default=100, help="requests before timing")
    ap.add_argument("--client", choices=("raw", "httpx"), default="raw")
    ap.add_argument("--synchronous", choices=("full", "normal"), default="full")
    ap.add_argument("--days", type=int, default=7, help="built-in scenario horizon [days]")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra argument for python -m eqglb.service (repeat)",
    )
    args = ap.parse_args(argv)
    if not (1 <= args.requests <= 1_000_000 and 0 < args.duration <= 600):
        ap.error("--requests must be in [1, 1e6] and --duration in (0, 600]")

    levels = args.concurrency
    per = args.warmup + args.requests
    load_before = os.getloadavg()[0]  # the machine's other work, before this one's
    bodies = [json.dumps(b).encode() for b in slot_bodies(1 + per * len(levels), args.days)]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        port = free_port()
        proc = start_server(db, port, args.synchronous, args.days, args.server_arg)
        try:
            lat0, st0, _ = asyncio.run(load(port, bodies, 0, 1, 30, 1, args.client))
            assert st0 == {200: 1}, f"first slot failed: {st0}"
            nxt, ok_all = 1, 1
            for conc in levels:
                if args.warmup:
                    _, stw, _ = asyncio.run(
                        load(port, bodies, nxt, args.warmup, 60, conc, args.client)
                    )
                    ok_all += stw.get(200, 0)
                nxt += args.warmup
                cpu0 = _cpu(proc.pid)
                lat, status, elapsed = asyncio.run(
                    load(port, bodies, nxt, args.requests, args.duration, conc, args.client)
                )
                cpu1 = _cpu(proc.pid)
                nxt += args.requests
                ok_all += status.get(200, 0)
                results.append(_result(lat, status, elapsed, cpu0, cpu1, conc, args))
            import httpx

            slots = httpx.get(f"http://127.0.0.1:{port}/healthz").json()["slots"]
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(
        f"10 data centres x 10 regions x 4 models, synchronous={args.synchronous}, "
        f"{args.client} client, {args.requests} requests per level after {args.warmup} "
        f"warm-up; {os.cpu_count()} CPUs, load avg (1 min) {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after"
    )
    print(
        "| concurrency | decisions/s | p50 [ms] | p99 [ms] | max [ms] | server CPU "
        "[ms/decision] | status |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        lm, cpu = r["latency_ms"], r["server_cpu_s"]
        per_dec = "-" if cpu is None else f"{1e3 * cpu / max(r['ok'], 1):.2f}"
        print(
            f"| {r['concurrency']} | {r['decisions_per_s']:.0f} | {lm['p50']:.1f} | "
            f"{lm['p99']:.1f} | {lm['max']:.1f} | {per_dec} | {r['status']} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"levels": results, "slots_in_db": slots}, indent=1) + "\n")
    if slots != ok_all:
        print(f"error: the database holds {slots} slots, expected {ok_all}", file=sys.stderr)
        return 1
    return 0


def _levels(text: str) -> list[int]:
    try:
        out = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give numbers of clients, e.g. 1,8,32"
        ) from None
    if not out or not all(1 <= c <= 1024 for c in out):
        raise argparse.ArgumentTypeError(f"{text!r}: each level must be in [1, 1024]")
    return out


def _result(
    lat: list[float],
    status: dict[int, int],
    elapsed: float,
    cpu0: float | None,
    cpu1: float | None,
    conc: int,
    args: argparse.Namespace,
) -> dict:
    ok = status.get(200, 0)
    a = np.asarray(lat) * 1e3
    return {
        "concurrency": conc,
        "requests": len(lat),
        "ok": ok,
        "status": {str(k): v for k, v in status.items()},
        "elapsed_s": elapsed,
        "decisions_per_s": ok / elapsed if elapsed > 0 else 0.0,
        "latency_ms": {
            "p50": float(np.percentile(a, 50)),
            "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)),
            "max": float(a.max()),
            "mean": float(a.mean()),
        },
        "server_cpu_s": None if cpu0 is None or cpu1 is None else cpu1 - cpu0,
        "client": args.client,
        "synchronous": args.synchronous,
        "size": "10 datacenters x 10 regions x 4 models",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_1min": os.getloadavg()[0],  # after this level
        },
    }


def _cpu(pid: int) -> float | None:
    """User + system CPU time of a process [s] (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


if __name__ == "__main__":
    raise SystemExit(main())
