"""MemoryOS tiers: add_memory throughput, retrieve_memory latency with 2,000 mid-term
segments, and LoCoMo evidence recall through retrieve_memory beside memory.search.

Prints figures; it is not a test. It starts its own server (fresh data directory, the
bundled embedding model, offline LLM) and stops it again:

    .venv/bin/python benchmarks/tiers.py                 # full run
    .venv/bin/python benchmarks/tiers.py --quick         # fewer segments, one conversation

1. `add_memory` of --segments + SHORT_TERM_CAPACITY pairs on distinct topics (each
   becomes its own mid-term segment), timed: pairs per second;
2. `retrieve_memory` p50/p95 with that many segments (the heat-promotion writes
   included);
3. LoCoMo (dev split): each conversation's turns, paired in order as (user_input,
   agent_response) pages, go through `add_memory` into one persona with a short-term
   capacity of 10; every category 1-4 question is asked through `retrieve_memory`
   (max_results 10) and through `memory.search` (limit 10) on the same turns stored as
   memories, and Recall@10 is |evidence turns in the pages or memories returned| /
   |evidence turns|.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import percentile, start_server, stop_server
from locomo_recall import DEFAULT_DATA, evidence_of, turns_of
from persona_mcp.client import PersonaClient

WORDS = (
    "harbor violin quarry saffron glacier orchard lantern meteor cobalt tundra "
    "falcon bakery canyon marble pepper jasmine beacon walnut velvet thunder "
    "compass pebble lagoon cedar ember prairie quartz maple comet willow"
).split()


def topic(i: int) -> str:
    a, b, c = WORDS[i % 30], WORDS[(i // 30) % 30], WORDS[(i // 900) % 30]
    return f"{a} {b} {c} number {i}"


async def throughput_and_latency(url: str, segments: int, queries: int) -> dict[str, Any]:
    async with PersonaClient(url, timeout=120) as client:
        await client.call("persona.switch", {"persona_id": "Kira"})
        total = segments + 10
        started = time.perf_counter()
        for i in range(total):
            await client.call(
                "add_memory",
                {
                    "user_input": f"Tell me about the {topic(i)}.",
                    "agent_response": f"The {topic(i)} is a fine subject on its own.",
                },
            )
        seconds = time.perf_counter() - started
        tiers = await client.call("memory.tiers")
        latencies = []
        for q in range(queries):
            t = time.perf_counter()
            await client.call("retrieve_memory", {"query": f"What about the {topic(q * 7)}?"})
            latencies.append(time.perf_counter() - t)
    return {
        "pairs": total,
        "add_per_second": total / seconds,
        "segments": tiers["counts"]["mid_term_segments"],
        "retrieve_p50_ms": percentile(latencies, 50) * 1000,
        "retrieve_p95_ms": percentile(latencies, 95) * 1000,
    }


async def locomo(url: str, data: list[dict[str, Any]]) -> dict[str, Any]:
    tiers_recall: list[float] = []
    search_recall: list[float] = []
    async with PersonaClient(url, timeout=300) as client:
        for n, sample in enumerate(data):
            name = f"locomo-{n}"
            persona = (await client.call("persona.create", {"name": name}))["persona"]["id"]
            turns = turns_of(sample["conversation"])
            known = {t["metadata"]["dia_id"] for t in turns}
            for start in range(0, len(turns), 500):
                await client.call(
                    "memory.store_batch",
                    {"persona_id": persona, "memories": turns[start : start + 500]},
                )
            for i in range(0, len(turns), 2):
                pair = turns[i : i + 2]
                ids = [t["metadata"]["dia_id"] for t in pair]
                await client.call(
                    "add_memory",
                    {
                        "persona_id": persona,
                        "user_input": pair[0]["content"],
                        "agent_response": pair[1]["content"] if len(pair) > 1 else "(no reply)",
                        "timestamp": pair[0]["occurred_at"],
                        "meta_data": {"dia_ids": ids},
                    },
                )
            for qa in sample["qa"]:
                if qa.get("category") not in (1, 2, 3, 4):
                    continue
                evidence = evidence_of(qa, known)
                if not evidence:
                    continue
                question = str(qa["question"])
                found = await client.call(
                    "retrieve_memory",
                    {"persona_id": persona, "query": question, "max_results": 10},
                )
                pages = found["retrieved_pages"]
                got = {d for p in pages for d in p["meta_data"].get("dia_ids", [])}
                tiers_recall.append(len(evidence & got) / len(evidence))
                hits = await client.call(
                    "memory.search", {"persona_id": persona, "query": question, "limit": 10}
                )
                got = {h["memory"]["metadata"]["dia_id"] for h in hits["results"]}
                search_recall.append(len(evidence & got) / len(evidence))
    return {
        "questions": len(tiers_recall),
        "retrieve_memory_r10": statistics.fmean(tiers_recall) if tiers_recall else float("nan"),
        "memory_search_r10": statistics.fmean(search_recall) if search_recall else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--segments", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    segments = 200 if args.quick else args.segments
    server = start_server(env={"EMBEDDING_PROVIDER": "minilm"})
    try:
        figures = asyncio.run(throughput_and_latency(server.url, segments, args.queries))
        if args.data.exists():
            data = json.loads(args.data.read_text())
            figures |= asyncio.run(locomo(server.url, data[:1] if args.quick else data))
    finally:
        stop_server(server)
    rows = [
        ("add_memory throughput", "-", f"{figures['add_per_second']:.0f} pairs/s"),
        ("mid-term segments", f"{segments}", f"{figures['segments']}"),
        ("retrieve_memory p50", "< 50 ms", f"{figures['retrieve_p50_ms']:.1f} ms"),
        ("retrieve_memory p95", "-", f"{figures['retrieve_p95_ms']:.1f} ms"),
    ]
    if "questions" in figures:
        rows += [
            ("LoCoMo R@10 retrieve_memory", "-", f"{figures['retrieve_memory_r10']:.3f}"),
            ("LoCoMo R@10 memory.search", "-", f"{figures['memory_search_r10']:.3f}"),
            ("LoCoMo questions", "-", f"{figures['questions']}"),
        ]
    print(f"{'measure':32} {'goal':>10} {'measured':>16}")
    for name, goal, measured in rows:
        print(f"{name:32} {goal:>10} {measured:>16}")
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
