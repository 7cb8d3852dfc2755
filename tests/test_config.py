"""Settings precedence: flags, then environment and .env, then defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from persona_mcp.config import load_settings


def test_defaults_follow_the_seed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env_file=None)
    assert (settings.server_host, settings.server_port) == ("127.0.0.1", 8000)
    assert settings.ollama_host == "http://localhost:11434"
    assert settings.default_model == "llama3.1:8b"
    assert (settings.max_memories_per_persona, settings.pruning_threshold) == (1000, 900)
    assert settings.decay_interval_hours == 6
    assert settings.session_timeout_hours == 24
    assert settings.llm_provider == "auto"
    assert settings.db_path == Path("data") / "persona_memory.db"


def test_environment_beats_dotenv_and_flags_beat_both(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("SERVER_PORT=9001\nDEFAULT_MODEL=from-dotenv\nDEBUG_MODE=true\n")
    monkeypatch.setenv("SERVER_PORT", "9002")
    monkeypatch.setenv("PERSONA_MCP_DATA_DIR", str(tmp_path / "env-data"))
    settings = load_settings(env_file=env_file)
    assert settings.server_port == 9002
    assert settings.default_model == "from-dotenv"
    assert settings.debug_mode is True
    assert settings.data_dir == tmp_path / "env-data"
    flagged = load_settings(env_file=env_file, server_port=9003, data_dir=tmp_path / "flag")
    assert flagged.server_port == 9003
    assert flagged.data_dir == tmp_path / "flag"


def test_database_path_overrides_the_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_PATH", "/tmp/elsewhere.db")
    assert str(load_settings(env_file=None).db_path) == "/tmp/elsewhere.db"


def test_inconsistent_settings_are_refused() -> None:
    with pytest.raises(ValidationError):
        load_settings(env_file=None, max_memories_per_persona=100, pruning_threshold=200)
    with pytest.raises(ValidationError):
        load_settings(env_file=None, llm_provider="openai")
    with pytest.raises(ValidationError):
        load_settings(env_file=None, server_port=70000)
