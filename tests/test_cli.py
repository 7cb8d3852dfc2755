"""The console script, run as a user runs it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from persona_mcp.client import PersonaClient
from tests.conftest import free_port

EXE = Path(sys.executable).parent / "persona-mcp"


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVER_", "LLM_"))}
    env["PERSONA_MCP_DATA_DIR"] = str(tmp_path / "data")
    env["EMBEDDING_PROVIDER"] = "none"
    return env


async def test_serve_starts_accepts_clients_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        str(EXE), "serve", "--port", str(port), "--llm", "offline",
        "--env-file", str(tmp_path / "none.env"),
        env=_env(tmp_path), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        result = None
        for _ in range(150):  # bounded: 15 s
            try:
                async with PersonaClient(f"ws://127.0.0.1:{port}/mcp", timeout=5) as client:
                    result = await client.call("persona.list")
                break
            except OSError:
                await asyncio.sleep(0.1)
        assert result is not None
        assert [p["name"] for p in result["personas"]] == ["Aria", "Kira"]
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)
    assert (tmp_path / "data" / "persona_memory.db").exists()


def test_serve_refuses_a_non_loopback_bind_without_required_auth(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(EXE), "serve", "--host", "0.0.0.0", "--env-file", str(tmp_path / "none.env")],
        env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--auth required" in done.stderr


def test_invalid_settings_are_reported_plainly(tmp_path: Path) -> None:
    env = _env(tmp_path) | {"SERVER_PORT": "not-a-port"}
    done = subprocess.run(
        [str(EXE), "serve", "--env-file", str(tmp_path / "none.env")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "server_port" in done.stderr.lower()


def test_bench_help_lists_every_benchmark(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(EXE), "bench", "--help"],
        env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0
    for name in ("ws", "mcp", "search", "lifecycle", "locomo"):
        assert f"    {name} " in done.stdout, name


def test_bench_passes_its_arguments_to_the_script_it_finds(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(EXE), "bench", "mcp", "--help"],
        env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0
    assert "mcp_roundtrip.py" in done.stdout
    assert "--transports" in done.stdout


def test_bench_says_what_to_do_when_the_scripts_are_not_there(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(EXE), "bench", "--scripts", str(tmp_path / "nowhere"), "lifecycle", "--quick"],
        env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "benchmarks/lifecycle.py is not available" in done.stderr
    assert "--scripts DIR" in done.stderr
