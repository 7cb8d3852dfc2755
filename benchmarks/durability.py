"""Durability under kill -9: nothing acknowledged is ever lost.

Each round starts `persona-mcp serve` on the same data directory, has several clients
store memories over the WebSocket door, kills the server with SIGKILL at a random moment,
restarts it and checks that every memory whose `memory.store` was acknowledged can be
read back, and that SQLite's integrity check passes. A second `serve` on the same data
directory while the first runs must refuse to start.

    .venv/bin/python benchmarks/durability.py [--rounds 10] [--clients 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import free_port
from persona_mcp.client import PersonaClient

EXE = Path(sys.executable).parent / "persona-mcp"


def spawn(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PERSONA_MCP_DATA_DIR": str(data_dir),
        "EMBEDDING_PROVIDER": "none",
        # Automatic pruning would archive memories: that is not loss, but not this check.
        "MAX_MEMORIES_PER_PERSONA": "100000000",
        "PRUNING_THRESHOLD": "99999999",
    }
    return subprocess.Popen(
        [str(EXE), "serve", "--port", str(port), "--llm", "offline",
         "--env-file", str(data_dir / "none.env")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


async def wait_ready(port: int, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            async with PersonaClient(f"ws://127.0.0.1:{port}/mcp", timeout=5) as client:
                await client.call("persona.list")
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("server did not start")


async def writer(port: int, acked: list[str], stop: asyncio.Event, n: int) -> None:
    try:
        async with PersonaClient(f"ws://127.0.0.1:{port}/mcp", timeout=10) as client:
            i = 0
            while not stop.is_set():
                i += 1
                result = await client.call(
                    "memory.store", {"content": f"writer {n} note {i}: {random.random()}"}
                )
                acked.append(result["memory"]["id"])
    except (TimeoutError, OSError, ConnectionError):
        pass  # the server was killed under us: what was acknowledged is in `acked`


async def run(rounds: int, clients: int) -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="persona-durability-"))
    acked: list[str] = []
    lost_total = 0
    refused_second = True
    for round_no in range(1, rounds + 1):
        port = free_port()
        proc = spawn(data_dir, port)
        await wait_ready(port)
        if round_no == 1:
            second = await asyncio.to_thread(
                subprocess.run,
                [str(EXE), "serve", "--port", str(free_port()), "--env-file", "none.env"],
                env={**os.environ, "PERSONA_MCP_DATA_DIR": str(data_dir)},
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            refused_second = second.returncode != 0 and "in use" in second.stderr
        stop = asyncio.Event()
        before = len(acked)
        tasks = [asyncio.create_task(writer(port, acked, stop, n)) for n in range(clients)]
        await asyncio.sleep(random.uniform(0.5, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop.set()
        await asyncio.gather(*tasks)
        # Restart and read back every acknowledged memory.
        port = free_port()
        proc = spawn(data_dir, port)
        await wait_ready(port)
        async with PersonaClient(f"ws://127.0.0.1:{port}/mcp", timeout=30) as client:
            lost = 0
            for memory_id in acked:
                try:
                    await client.call("memory.get", {"memory_id": memory_id})
                except Exception:
                    lost += 1
        proc.terminate()
        proc.wait(15)
        with sqlite3.connect(data_dir / "persona_memory.db") as conn:
            integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        lost_total += lost
        print(
            f"round {round_no:2}: {len(acked) - before:5} acknowledged this round, "
            f"{len(acked):6} in all, {lost} lost, integrity {integrity}"
        )
    print()
    print(f"{'measure':40} {'goal':>10} {'measured':>10}  verdict")
    print(f"{'acknowledged memories lost':40} {'0':>10} {lost_total:>10}  "
          f"{'ok' if lost_total == 0 else 'MISS'}")  # fmt: skip
    print(f"{'second serve on the same data dir':40} {'refused':>10} "
          f"{'refused' if refused_second else 'started':>10}  "
          f"{'ok' if refused_second else 'MISS'}")  # fmt: skip
    return 0 if lost_total == 0 and refused_second else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    return asyncio.run(run(args.rounds, args.clients))


if __name__ == "__main__":
    sys.exit(main())
