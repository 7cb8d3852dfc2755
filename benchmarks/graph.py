"""The Persona knowledge graph: ingestion throughput, graph-expanded search at scale, and
LoCoMo recall with and without expansion.

Prints figures; it is not a test. It starts its own server (the installed `persona-mcp`
next to this interpreter, a fresh temporary data directory, `--llm offline`, the bundled
MiniLM embedder) and always stops it again:

    .venv/bin/python benchmarks/graph.py                    # quick: 5k memories, 1 conversation
    .venv/bin/python benchmarks/graph.py --memories 100000 --conversations 5   # the full run
    .venv/bin/python benchmarks/graph.py --locomo /path/to/locomo-dev.json --json

Measurements:

1. extraction in this process: rules + spaCy NER on the ingest texts, per text (what
   `memory.ingest` spends before it stores anything);
2. ingestion: `memory.ingest` of synthetic diary entries (an event, a trait, a plan, a
   task; family words, names, places), one call at a time, offline extraction: calls/s,
   memories/s and the call's p50/p95 (embedding and the trust checks included), on a
   fresh persona and again once that persona holds --memories memories;
3. search at scale: the persona is filled with --memories memories through
   `memory.store_batch` (episodes among them join the `next` chain), then --searches
   paraphrased questions through `memory.search` (limit 10), plain and with `expand`:
   p50/p95 round trips and how many hits came by an edge;
4. LoCoMo recall on the development split: every turn of a conversation goes through
   `memory.ingest` (with the session date as `occurred_at` and its `dia_id` in metadata),
   then each category 1-4 question is searched (limit 20) with and without `expand`;
   Recall@k over the evidence turns (a turn split into several memories counts once, at
   its best rank). The split is found with --locomo, else $LOCOMO_DATA, else
   `shared/benchmarks/locomo/locomo-dev.json` in a parent folder of this script or of the
   working directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import start_server, stop_server
from locomo_recall import CATEGORIES, KS, evidence_of, turns_of
from memory_scale import CITIES, NAMES, ms_summary, synth_memories, synth_queries, wait_embedder
from persona_mcp.client import PersonaClient
from persona_mcp.graph.extract import extract
from persona_mcp.graph.ner import SpacyRecognizer

LOCOMO_RELATIVE = Path("shared/benchmarks/locomo/locomo-dev.json")
KIN = ["mother", "father", "sister", "brother", "friend", "boss", "cousin", "aunt"]
HOBBIES = ["rainy days", "jazz", "climbing", "board games", "long walks", "sushi", "poetry"]
TRAITS = ["a shy person", "a night owl", "quite patient", "an early bird", "rather stubborn"]
PLANS = ["run a marathon", "learn the cello", "visit {city}", "write a novel", "move to {city}"]
TASKS = ["book the flights", "buy new shoes", "call the landlord", "renew my passport"]
OPENINGS = [
    "Yesterday I went hiking with my {kin} {name} near {city}.",
    "{name}, my {kin}, took me to a concert in {city}.",
    "Last week I had dinner with {name} in {city}.",
    "This morning my {kin} {name} called about the trip to {city}.",
]


def find_locomo(given: Path | None) -> Path | None:
    """The LoCoMo development split: the flag, else $LOCOMO_DATA, else the shared folder
    in a parent of this script or of the working directory (a clone beside shared/)."""
    if given is not None:
        return given
    if os.environ.get("LOCOMO_DATA"):
        return Path(os.environ["LOCOMO_DATA"])
    for base in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for folder in (base, *base.parents):
            candidate = folder / LOCOMO_RELATIVE
            if candidate.exists():
                return candidate
    return None


def diary_entries(rng: random.Random, n: int) -> list[str]:
    """n synthetic diary entries, each with an event, a trait, a plan and a task."""
    out = []
    for _ in range(n):
        slots = {"name": rng.choice(NAMES), "city": rng.choice(CITIES), "kin": rng.choice(KIN)}
        plan = rng.choice(PLANS).format(city=rng.choice(CITIES))
        out.append(
            " ".join(
                [
                    rng.choice(OPENINGS).format(**slots),
                    f"I love {rng.choice(HOBBIES)} and I am {rng.choice(TRAITS)}.",
                    f"Next year I plan to {plan}.",
                    f"I need to {rng.choice(TASKS)}.",
                ]
            )
        )
    return out


async def extraction_in_process(texts: list[str]) -> dict[str, Any]:
    recognizer = SpacyRecognizer()
    await recognizer.recognize(["warm up"])  # the model loads on first use
    per_text = []
    for text in texts:
        t0 = time.perf_counter()
        spans = await recognizer.recognize([text])
        extract(text, spans[0] if spans else None, "rules+spacy")
        per_text.append((time.perf_counter() - t0) * 1000)
    await recognizer.aclose()
    return {"texts": len(texts), "ms": ms_summary(per_text), "recognizer": recognizer.status()}


async def ingest(client: PersonaClient, persona_id: str, texts: list[str]) -> dict[str, Any]:
    calls: list[float] = []
    memories = entities = 0
    extractors: set[str] = set()
    started = time.perf_counter()
    for text in texts:
        t0 = time.perf_counter()
        result = await client.call("memory.ingest", {"content": text, "persona_id": persona_id})
        calls.append((time.perf_counter() - t0) * 1000)
        memories += len(result["memories"])
        entities += len(result["entities"])
        extractors.add(result["extractor"])
    seconds = time.perf_counter() - started
    return {
        "calls": len(texts),
        "calls_per_second": round(len(texts) / seconds, 1),
        "memories_per_second": round(memories / seconds, 1),
        "memories": memories,
        "entity_mentions": entities,
        "extractor": sorted(extractors),
        "call_ms": ms_summary(calls),
    }


async def fill(client: PersonaClient, persona_id: str, n: int, seed: int) -> dict[str, Any]:
    items = synth_memories(random.Random(seed), n, time.time())
    started = time.perf_counter()
    for start in range(0, len(items), 500):
        await client.call(
            "memory.store_batch", {"persona_id": persona_id, "memories": items[start : start + 500]}
        )
    seconds = time.perf_counter() - started
    episodes = sum(1 for i in items if i["memory_type"] == "episode")
    return {
        "memories": n,
        "episodes": episodes,
        "per_second": round(n / seconds, 1),
        "seconds": round(seconds, 1),
    }


async def searches(client: PersonaClient, persona_id: str, queries: list[str]) -> dict[str, Any]:
    await client.call("memory.search", {"query": queries[0], "persona_id": persona_id})  # loads
    figures: dict[str, Any] = {}
    for expand in (False, True):
        ms: list[float] = []
        via = 0
        for query in queries:
            t0 = time.perf_counter()
            found = await client.call(
                "memory.search",
                {"query": query, "persona_id": persona_id, "limit": 10, "expand": expand},
            )
            ms.append((time.perf_counter() - t0) * 1000)
            via += sum(1 for r in found["results"] if r.get("via"))
        figures["expand" if expand else "plain"] = {
            **ms_summary(ms),
            "hits_by_edge_per_search": round(via / len(queries), 2),
        }
    return figures


async def locomo(
    client: PersonaClient, data: list[dict[str, Any]], conversations: int
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    stored_turns = total_turns = 0
    ingest_seconds = 0.0
    stamp = int(time.time())
    for conv in data[:conversations]:
        persona = (
            await client.call("persona.create", {"name": f"locomo-{conv['sample_id']}-{stamp}"})
        )["persona"]
        items = turns_of(conv["conversation"])
        kept: set[str] = set()
        started = time.perf_counter()
        for item in items:
            result = await client.call(
                "memory.ingest",
                {
                    "content": item["content"],
                    "persona_id": persona["id"],
                    "occurred_at": item["occurred_at"],
                    "metadata": item["metadata"],
                },
            )
            if result["memories"]:
                kept.add(item["metadata"]["dia_id"])
        ingest_seconds += time.perf_counter() - started
        stored_turns += len(kept)
        total_turns += len(items)
        known = {i["metadata"]["dia_id"] for i in items}
        for qa in conv["qa"]:
            if qa.get("category") not in CATEGORIES:
                continue
            evidence = evidence_of(qa, known)
            if not evidence:
                continue
            row: dict[str, Any] = {"category": qa["category"]}
            for expand in (False, True):
                found = await client.call(
                    "memory.search",
                    {"query": qa["question"], "persona_id": persona["id"], "limit": 20,
                     "expand": expand},
                )  # fmt: skip
                ranked = list(
                    dict.fromkeys(r["memory"]["metadata"].get("dia_id") for r in found["results"])
                )
                tag = "expand" if expand else "plain"
                for k in KS:
                    row[f"{tag}@{k}"] = len(evidence & set(ranked[:k])) / len(evidence)
            rows.append(row)
        await client.call("persona.delete", {"persona_id": persona["id"]})

    def recall(group: list[dict[str, Any]]) -> dict[str, float]:
        return {
            key: round(statistics.fmean(r[key] for r in group), 3)
            for key in (f"{t}@{k}" for t in ("plain", "expand") for k in KS)
        }

    return {
        "conversations": min(conversations, len(data)),
        "questions": len(rows),
        "turns": total_turns,
        "turns_stored": stored_turns,
        "ingest_turns_per_second": round(total_turns / ingest_seconds, 1),
        "pooled": recall(rows),
        "by_category": {
            CATEGORIES[c]: {"n": len(group), **recall(group)}
            for c in CATEGORIES
            if (group := [r for r in rows if r["category"] == c])
        },
    }


async def run(args: argparse.Namespace, url: str, locomo_data: list[dict[str, Any]] | None) -> dict:
    figures: dict[str, Any] = {}
    rng = random.Random(args.seed)
    fresh_texts = diary_entries(rng, args.ingests)
    later_texts = diary_entries(rng, max(1, args.ingests // 2))
    figures["extraction"] = await extraction_in_process(fresh_texts)
    async with PersonaClient(url, timeout=600) as client:
        figures["embedder"] = (await wait_embedder(client)).get("model")
        await client.call("memory.set_pruning_config", {"auto_prune": False})
        persona = (await client.call("persona.create", {"name": "graph-bench"}))["persona"]
        figures["ingest_fresh"] = await ingest(client, persona["id"], fresh_texts)
        figures["fill"] = await fill(client, persona["id"], args.memories, args.seed)
        figures["ingest_at_scale"] = await ingest(client, persona["id"], later_texts)
        stats = await client.call("memory.stats", {"persona_id": persona["id"]})
        figures["persona_memories"] = stats["total"]
        queries = synth_queries(random.Random(args.seed + 1), args.searches)
        figures["search"] = await searches(client, persona["id"], queries)
        if locomo_data is not None:
            figures["locomo"] = await locomo(client, locomo_data, args.conversations)
    return figures


def report(figures: dict[str, Any]) -> None:
    ex = figures["extraction"]
    print(f"extraction in process (rules + spaCy NER), {ex['texts']} texts: "
          f"p50 {ex['ms']['p50']} ms, p95 {ex['ms']['p95']} ms per text")  # fmt: skip
    for key, label in (("ingest_fresh", "fresh persona"), ("ingest_at_scale", "at scale")):
        ing = figures[key]
        print(
            f"memory.ingest ({label}, {ing['extractor']}): {ing['calls_per_second']} calls/s, "
            f"{ing['memories_per_second']} memories/s, call p50 {ing['call_ms']['p50']} ms, "
            f"p95 {ing['call_ms']['p95']} ms ({ing['calls']} calls, {ing['memories']} memories)"
        )
    fill = figures["fill"]
    print(
        f"fill: {fill['memories']} memories ({fill['episodes']} episodes chained) through "
        f"memory.store_batch at {fill['per_second']} /s; persona holds "
        f"{figures['persona_memories']} (embedder {figures['embedder']})"
    )
    for key in ("plain", "expand"):
        s = figures["search"][key]
        print(
            f"memory.search {key:6} at {figures['persona_memories']} memories: p50 {s['p50']} ms, "
            f"p95 {s['p95']} ms, {s['hits_by_edge_per_search']} hits by an edge per search"
        )
    if "locomo" not in figures:
        print("LoCoMo: skipped (no data: pass --locomo PATH or set LOCOMO_DATA)")
        return
    lo = figures["locomo"]
    print(
        f"LoCoMo dev, {lo['conversations']} conversations, {lo['questions']} questions; "
        f"{lo['turns_stored']}/{lo['turns']} turns became memories "
        f"(ingest {lo['ingest_turns_per_second']} turns/s)"
    )
    print(
        f"{'':14} {'n':>5} " + " ".join(f"{t[:3]}@{k:<3}" for t in ("plain", "expand") for k in KS)
    )
    row = "{:14} {:>5} " + " ".join(["{:>7.3f}"] * (2 * len(KS)))
    keys = [f"{t}@{k}" for t in ("plain", "expand") for k in KS]
    print(row.format("pooled", lo["questions"], *(lo["pooled"][k] for k in keys)))
    for name, r in lo["by_category"].items():
        print(row.format(name, r["n"], *(r[k] for k in keys)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--memories", type=int, default=5000, help="fill the persona to this")
    parser.add_argument("--ingests", type=int, default=200, help="diary entries ingested")
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--conversations", type=int, default=1, help="LoCoMo conversations")
    parser.add_argument("--locomo", type=Path, help="the LoCoMo dev split (else $LOCOMO_DATA)")
    parser.add_argument("--no-locomo", action="store_true", help="skip the LoCoMo recall")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    locomo_data = None
    if not args.no_locomo:
        path = find_locomo(args.locomo)
        if path is not None:
            locomo_data = json.loads(path.read_text())
    cap = str(max(100_000, args.memories * 2 + 50_000))
    server = start_server(env={"EMBEDDING_PROVIDER": "minilm", "MAX_MEMORIES_PER_USER": cap})
    try:
        figures = asyncio.run(run(args, server.url, locomo_data))
    finally:
        stop_server(server)
    report(figures)
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
