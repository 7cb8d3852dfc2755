"""LoCoMo retrieval recall, measured through the server's public WebSocket API.

Each conversation becomes one persona; every turn is stored with `memory.store_batch`
as `"<speaker>: <text>"` (plus `[shares <caption>]` for image turns), with the session
date as `occurred_at` and the turn's `dia_id` in `metadata`. Every category 1-4
question is then searched with `memory.search` (`limit: 20`), and Recall@k is
|evidence turns in the top k| / |evidence turns|, averaged over questions.

    python benchmarks/locomo_recall.py                       # starts its own server
    python benchmarks/locomo_recall.py --url ws://127.0.0.1:8000/mcp
    python benchmarks/locomo_recall.py --data other-split.json --json
    LOCOMO_DATA=/path/to/locomo python benchmarks/locomo_recall.py

The data (`locomo-dev.json`, not in the repository: see its README beside it) is found
at `--data PATH`, else at $LOCOMO_DATA, else in `shared/benchmarks/locomo/` beside the
checkout (`../shared/...` from the repository root); a folder holding `locomo-dev.json`
does for a file. It ends with the verdicts: pooled R@10 against `--baseline` (the figure
before issue 10's search changes), which must not drop, and the ingest rate against
issue 10's goal, beside the model alone on the same texts once the server has stopped
(the most any ingest of them can reach on this machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import model_alone, percentile, start_server, stop_server
from persona_mcp.client import PersonaClient

REPO = Path(__file__).resolve().parents[1]
DATA_FILE = "locomo-dev.json"
PLACES = (  # where the data is looked for when neither --data nor LOCOMO_DATA says
    REPO.parent / "shared/benchmarks/locomo",
    REPO / "shared/benchmarks/locomo",
)
# Pooled R@10 on the development split before issue 10's search work (main at a75e9b5,
# 760 questions; R@5 0.705, R@20 0.847).
BASELINE_R10 = 0.783
EVIDENCE = re.compile(r"D:?(\d+):(\d+)")
KS = (5, 10, 20)
BATCH = 500  # memories per store_batch
INGEST_GOAL = 500  # memories/s (issue 10)
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}


def find_data(given: Path | None) -> Path:
    """The LoCoMo file: `given`, else $LOCOMO_DATA, else the usual places (a folder
    stands for the `locomo-dev.json` in it); exits with what to pass when none has it."""
    env = os.environ.get("LOCOMO_DATA")
    tried = [given] if given else [Path(env)] if env else list(PLACES)
    for place in tried:
        path = place / DATA_FILE if place.is_dir() else place
        if path.is_file():
            return path
    shown = "\n  ".join(str(p) for p in tried)
    raise SystemExit(
        f"LoCoMo data not found; looked at:\n  {shown}\n"
        f"Pass --data PATH (the {DATA_FILE} file or its folder) or set LOCOMO_DATA=PATH. "
        "It is the development split of snap-research/LoCoMo (see the README beside it)."
    )


def session_time(text: str) -> str:
    when = datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)
    return when.isoformat()


def turns_of(conversation: dict[str, Any]) -> list[dict[str, Any]]:
    items = []
    numbers = sorted(
        int(k.split("_")[1])
        for k in conversation
        if re.fullmatch(r"session_\d+", k) and conversation[k]
    )
    for n in numbers:
        occurred = session_time(conversation[f"session_{n}_date_time"])
        for turn in conversation[f"session_{n}"]:
            text = f"{turn['speaker']}: {turn['text']}"
            if turn.get("blip_caption"):
                text += f" [shares {turn['blip_caption']}]"
            items.append(
                {
                    "content": text,
                    "occurred_at": occurred,
                    "metadata": {"dia_id": turn["dia_id"]},
                }
            )
    return items


def evidence_of(qa: dict[str, Any], known: set[str]) -> set[str]:
    found = set()
    for item in qa.get("evidence", []):
        for session, turn in EVIDENCE.findall(item):
            dia = f"D{int(session)}:{int(turn)}"
            if dia in known:
                found.add(dia)
    return found


async def run(url: str, data: list[dict[str, Any]], limit_conversations: int | None) -> dict:
    per_question: list[dict[str, Any]] = []
    latencies: list[float] = []
    ingest_seconds = 0.0
    ingested = 0
    async with PersonaClient(url, timeout=600) as client:
        for _ in range(600):  # the embedding model loads in the background: bounded wait
            status = await client.call("system.status")
            if status["embedder"].get("ready") or status["embedder"].get("provider") == "none":
                break
            await asyncio.sleep(0.5)
        stamp = int(time.time())
        for conv in data[:limit_conversations]:
            name = f"locomo-{conv['sample_id']}-{stamp}"
            persona = (await client.call("persona.create", {"name": name}))["persona"]
            items = turns_of(conv["conversation"])
            started = time.perf_counter()
            for start in range(0, len(items), BATCH):
                await client.call(
                    "memory.store_batch",
                    {"persona_id": persona["id"], "memories": items[start : start + BATCH]},
                )
            ingest_seconds += time.perf_counter() - started
            ingested += len(items)
            known = {i["metadata"]["dia_id"] for i in items}
            for qa in conv["qa"]:
                category = qa.get("category")
                if category not in CATEGORIES:
                    continue
                evidence = evidence_of(qa, known)
                if not evidence:
                    continue
                t0 = time.perf_counter()
                found = await client.call(
                    "memory.search",
                    {"query": qa["question"], "persona_id": persona["id"], "limit": 20},
                )
                latencies.append((time.perf_counter() - t0) * 1000)
                ranked = [r["memory"]["metadata"].get("dia_id") for r in found["results"]]
                per_question.append(
                    {
                        "conversation": conv["sample_id"],
                        "category": category,
                        **{f"r@{k}": len(evidence & set(ranked[:k])) / len(evidence) for k in KS},
                    }
                )
            await client.call("persona.delete", {"persona_id": persona["id"]})

    def recall(rows: list[dict[str, Any]]) -> dict[str, float]:
        return {f"r@{k}": round(statistics.fmean(r[f"r@{k}"] for r in rows), 3) for k in KS}

    return {
        "questions": len(per_question),
        "pooled": recall(per_question),
        "by_category": {
            CATEGORIES[c]: {"n": len(rows), **recall(rows)}
            for c in CATEGORIES
            if (rows := [r for r in per_question if r["category"] == c])
        },
        "by_conversation": {
            conv: {"n": len(rows), **recall(rows)}
            for conv in dict.fromkeys(r["conversation"] for r in per_question)
            if (rows := [r for r in per_question if r["conversation"] == conv])
        },
        "search_ms": {
            "p50": round(percentile(latencies, 50), 2),
            "p95": round(percentile(latencies, 95), 2),
        },
        "ingest": {
            "memories": ingested,
            "per_second": round(ingested / ingest_seconds, 1) if ingest_seconds else None,
        },
    }


def report(figures: dict[str, Any]) -> None:
    print(f"LoCoMo recall over {figures['questions']} questions (categories 1-4)")
    print(f"{'':14} {'n':>5} {'R@5':>7} {'R@10':>7} {'R@20':>7}")
    pooled = figures["pooled"]
    row = "{:14} {:>5} {:>7.3f} {:>7.3f} {:>7.3f}"
    print(row.format("pooled", figures["questions"], pooled["r@5"], pooled["r@10"], pooled["r@20"]))
    for group in ("by_category", "by_conversation"):
        for name, r in figures[group].items():
            print(row.format(name, r["n"], r["r@5"], r["r@10"], r["r@20"]))
    print("reference R@10 on the development split: BM25 0.581, MiniLM 0.511, RRF 0.578")
    ms = figures["search_ms"]
    print(f"memory.search latency: p50 {ms['p50']} ms, p95 {ms['p95']} ms")
    ingest = figures["ingest"]
    print(f"ingest: {ingest['memories']} memories at {ingest['per_second']} memories/s")
    alone = figures.get("model_alone")
    if alone:
        print(
            f"the model alone on the same texts, in batches of {BATCH}: "
            f"{alone['encode_per_second']} texts/s (the ceiling of ingest on this machine)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="an already running server (default: start one)")
    parser.add_argument(
        "--data",
        type=Path,
        help=f"{DATA_FILE} or its folder (default: $LOCOMO_DATA, then ../shared)",
    )
    parser.add_argument(
        "--baseline",
        type=float,
        default=BASELINE_R10,
        help=f"pooled R@10 that must not drop (default {BASELINE_R10}, before issue 10)",
    )
    parser.add_argument("--conversations", type=int, help="only the first N conversations")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    data = json.loads(find_data(args.data).read_text())
    server = None if args.url else start_server(env={"EMBEDDING_PROVIDER": "minilm"})
    try:
        url = args.url or server.url  # type: ignore[union-attr]
        figures = asyncio.run(run(url, data, args.conversations))
    finally:
        if server is not None:
            stop_server(server)
    if server is not None:  # the server has stopped: the model gets the cores to itself
        texts = [
            turn["content"]
            for conv in data[: args.conversations]
            for turn in turns_of(conv["conversation"])
        ]
        figures["model_alone"] = asyncio.run(model_alone(texts, BATCH))
    report(figures)
    r10 = figures["pooled"]["r@10"]
    rate = figures["ingest"]["per_second"] or 0.0
    rows = [
        ("LoCoMo dev R@10, pooled", f">= {args.baseline}", r10, r10 >= args.baseline),
        ("store_batch of LoCoMo turns, /s", f">= {INGEST_GOAL}", rate, rate >= INGEST_GOAL),
    ]
    print(f"{'target':34} {'goal':>10} {'measured':>12}  result")
    for name, goal, got, ok in rows:
        print(f"{name:34} {goal:>10} {got:>12}  {'PASS' if ok else 'MISS'}")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
