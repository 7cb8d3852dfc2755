"""`persona-mcp bench ws|mcp|search|lifecycle|locomo`: the project's benchmarks.

Each is a script in `benchmarks/` of the source checkout; this command finds that folder
next to the package (an editable install, `make install`), or where `--scripts` says, and
runs the script with this interpreter, passing every further argument on (`persona-mcp
bench ws --help` shows the script's own options). Each script starts its own server on
loopback, prints goal / measured / verdict rows, and stops what it started.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

# name -> (script, what it measures)
BENCHMARKS = {
    "ws": (
        "ws_rpc.py",
        "WebSocket JSON-RPC: start-up, latency, throughput, server CPU per call, "
        "10,000 idle connections, event fan-out",
    ),
    "mcp": (
        "mcp_roundtrip.py",
        "MCP tools/call round trip beside a bare SDK server returning the same result, "
        "stdio and Streamable HTTP, measured side by side",
    ),
    "search": ("memory_scale.py", "memory.search latency and ingest rate as memories grow"),
    "lifecycle": (
        "lifecycle.py",
        "decay, a dry selection, a 15k prune and its restore over 100k memories in one persona",
    ),
    "locomo": (
        "locomo_recall.py",
        "LoCoMo recall@k of memory.search (needs the LoCoMo data: --data or LOCOMO_DATA)",
    ),
}


def add_bench_command(commands: Any) -> None:
    bench = commands.add_parser(
        "bench",
        help="run a benchmark (from a source checkout): " + ", ".join(BENCHMARKS),
        description=__doc__.split("\n\n")[0],
    )
    bench.add_argument(
        "--scripts",
        metavar="DIR",
        type=Path,
        help="the benchmarks/ folder to run from (default: the source checkout's)",
    )
    which = bench.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name, (script, what) in BENCHMARKS.items():
        what = f"{what} (benchmarks/{script})"
        # No options of its own: everything after the name goes to the script (-h too).
        which.add_parser(name, help=what, add_help=False)


def scripts_folder() -> Path | None:
    """`benchmarks/` of the checkout this package is installed from, if it is one."""
    folder = Path(__file__).resolve().parents[2] / "benchmarks"
    return folder if (folder / "common.py").is_file() else None


def run_bench(args: argparse.Namespace, passed_on: list[str]) -> int:
    script, _ = BENCHMARKS[args.benchmark]
    folder = args.scripts or scripts_folder()
    path = folder / script if folder is not None else None
    if path is None or not path.is_file():
        where = f"{folder}" if folder is not None else "a source checkout next to this package"
        print(
            f"persona-mcp bench: benchmarks/{script} is not available in {where}. The "
            "benchmarks ship with the source, not the package: run them from a clone "
            "(`make install` there, then `.venv/bin/persona-mcp bench "
            f"{args.benchmark}` or `.venv/bin/python benchmarks/{script}`), or pass "
            "--scripts DIR with the clone's benchmarks/ folder.",
            file=sys.stderr,
        )
        return 2
    return subprocess.call([sys.executable, str(path), *passed_on])
