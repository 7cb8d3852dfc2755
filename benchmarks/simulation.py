"""Chatroom benchmark: turns per second, and the server's cheap-call latency meanwhile.

Prints figures; it is not a test.

    .venv/bin/python benchmarks/simulation.py            # about 30 s
    .venv/bin/python benchmarks/simulation.py --turns 20 --calls 200

1. turns per second for 2, 4 and 8 personas, in process (a fresh App and database each,
   `EMBEDDING_PROVIDER=none` unless `--embedding-provider minilm`): offline (the
   template writer) and with the repo's protocol-faithful fake Ollama
   (tests/fakes/llm_server.py, over real HTTP on loopback, answering at once). A turn
   includes choosing the speaker, writing the line, the turn's transaction (transcript,
   relationships, moods) and every listener storing what it heard in its memory;
2. `persona.list` round-trip latency (p50/p99, one client, one call after another) on a
   `persona-mcp serve` subprocess (offline), idle and while an 8-persona chatroom of up
   to `--simulate` turns runs (only calls answered while the room was running count).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.fakes
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import percentile, start_server, stop_server  # noqa: E402
from persona_mcp.app import DEFAULT_USER, App  # noqa: E402
from persona_mcp.client import PersonaClient  # noqa: E402
from persona_mcp.config import Settings  # noqa: E402
from tests.fakes.llm_server import FakeLLMServer  # noqa: E402

EXTRA = [
    ("Milo", ["playful", "energetic", "bold"], {"travel": 0.9, "music": 0.7, "nature": 0.6}),
    ("Suri", ["warm", "empathetic", "dreamy"], {"emotions": 0.9, "poetry": 0.8, "people": 0.7}),
    ("Oren", ["precise", "logical", "honest"], {"mathematics": 0.9, "science": 0.8}),
    ("Lena", ["witty", "cheerful", "curious"], {"gossip": 0.8, "people": 0.8, "books": 0.6}),
    ("Tavi", ["methodical", "reserved", "analytical"], {"history": 0.9, "languages": 0.7}),
    ("Juno", ["storytelling", "romantic", "bold"], {"stories": 0.9, "travel": 0.7}),
]


async def turns_per_second(
    n: int, turns: int, llm: str, ollama_url: str | None, embedding: str
) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="persona-sim-bench-") as tmp:
        values: dict[str, Any] = {
            "data_dir": Path(tmp),
            "llm_provider": llm,
            "embedding_provider": embedding,
            "background_processing": False,
        }
        if ollama_url:
            values["ollama_host"] = ollama_url
        app = App(Settings(_env_file=None, **values))
        await app.start(background=False)
        try:
            if embedding != "none":
                await app.memory.embedder.wait_ready()  # type: ignore[attr-defined]
            names = ["Aria", "Kira"]
            for name, traits, prefs in EXTRA[: n - 2]:
                await app.personas.create(
                    DEFAULT_USER,
                    name=name,
                    description=f"{name}, a guest of the chatroom.",
                    personality_traits=traits,
                    backstory="",
                    topic_preferences=prefs,
                    model=None,
                )
                names.append(name)
            sim = await app.simulations.start(
                DEFAULT_USER, names, "music and travel", turns, seed=1, background=False
            )
            started = time.perf_counter()
            done = await app.simulations.run(sim.id)
            elapsed = time.perf_counter() - started
            return done.turns / elapsed, done.turns
        finally:
            await app.close()


async def list_latency(client: PersonaClient, calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        await client.call("persona.list")
        times.append((time.perf_counter() - t0) * 1000)
    return times


async def latency_during_simulation(calls: int, sim_turns: int, embedding: str) -> None:
    server = start_server({"EMBEDDING_PROVIDER": embedding})
    try:
        async with PersonaClient(server.url, timeout=30) as client:
            idle = await list_latency(client, calls)
            print(
                f"persona.list idle:               p50 {percentile(idle, 50):6.2f} ms  "
                f"p99 {percentile(idle, 99):6.2f} ms  ({len(idle)} calls)"
            )
            names = ["Aria", "Kira"]
            for name, traits, prefs in EXTRA:
                await client.call(
                    "persona.create",
                    {"name": name, "personality_traits": traits, "topic_preferences": prefs},
                )
                names.append(name)
            sim_id = (
                await client.call(
                    "simulation.start",
                    {
                        "personas": names,
                        "topic": "music and travel",
                        "max_turns": sim_turns,
                        "seed": 1,
                    },
                )
            )["simulation_id"]
            busy: list[float] = []
            status = {"status": "running", "turns": 0}
            for _ in range(200):  # bounded: measure in rounds while the room is running
                round_times = await list_latency(client, 25)
                status = await client.call("simulation.status", {"simulation_id": sim_id})
                if status["status"] != "running":
                    break
                busy.extend(round_times)
            print(
                f"persona.list during an 8-persona chatroom: p50 {percentile(busy, 50):6.2f} ms  "
                f"p99 {percentile(busy, 99):6.2f} ms  ({len(busy)} calls, room ran "
                f"{status['turns']} turns, {status['status']})"
            )
    finally:
        stop_server(server)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=40, help="turns per chatroom")
    parser.add_argument("--calls", type=int, default=500, help="persona.list calls per phase")
    parser.add_argument("--simulate", type=int, default=200, help="turns of the served room")
    parser.add_argument("--embedding-provider", default="none", choices=["none", "minilm"])
    args = parser.parse_args()
    emb = args.embedding_provider
    print(f"chatroom turns/s ({args.turns} turns each, embeddings: {emb}):")
    for n in (2, 4, 8):
        rate, done = await turns_per_second(n, args.turns, "offline", None, emb)
        print(f"  offline   {n} personas: {rate:8.1f} turns/s ({done} turns)")
    async with FakeLLMServer(models=["llama3.1:8b"]) as fake:
        for n in (2, 4, 8):
            rate, done = await turns_per_second(n, args.turns, "ollama", fake.url, emb)
            print(f"  fake LLM  {n} personas: {rate:8.1f} turns/s ({done} turns)")
    await latency_during_simulation(args.calls, args.simulate, emb)


if __name__ == "__main__":
    asyncio.run(main())
