"""The composition root: builds every service from the settings and owns their lifetime."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from persona_mcp.auth import LOCAL_USER, TokenService
from persona_mcp.auth.limits import RateLimiter
from persona_mcp.clock import Clock, SystemClock
from persona_mcp.config import Settings
from persona_mcp.conversation.engine import ConversationEngine
from persona_mcp.embeddings import Embedder, build_embedder
from persona_mcp.events import EventBus
from persona_mcp.fleet import Fleet, Peers, Solo
from persona_mcp.graph.answers import AnswerService
from persona_mcp.graph.ner import Recognizer, SpacyRecognizer
from persona_mcp.graph.service import GraphService
from persona_mcp.jobs.election import Advisory, Always, Election
from persona_mcp.jobs.sessions import SessionCleanupJob
from persona_mcp.llm import LLMProvider, build_provider
from persona_mcp.memory.decay import DecayService
from persona_mcp.memory.pruning import PruningService
from persona_mcp.memory.service import MemoryService
from persona_mcp.memory.tiers import TierService
from persona_mcp.metrics import InstrumentedEmbedder, InstrumentedLLM, Metrics
from persona_mcp.operations import Registry, build_registry
from persona_mcp.personas.service import PersonaService
from persona_mcp.personas.social import SocialService
from persona_mcp.personas.visual import VisualService
from persona_mcp.portability.cards import CardService
from persona_mcp.portability.state import StateService
from persona_mcp.sessions import SessionService
from persona_mcp.simulation.chatroom import ChatroomService
from persona_mcp.store import metrics as metrics_store
from persona_mcp.store import personas as persona_store
from persona_mcp.store.backends import open_store, redacted_url, storage_name
from persona_mcp.users import UserService

log = logging.getLogger(__name__)

STARTUP_TOPIC = "what makes a story worth telling"


class App:
    """Everything a door needs: services, the registry, counters."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock | None = None,
        llm: LLMProvider | None = None,
        embedder: Embedder | None = None,
        recognizer: Recognizer | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.db = open_store(settings)
        self.events = EventBus()
        self.fleet, self.election = self._fleet(settings.database_url)
        self.metrics = Metrics()
        self.tokens = TokenService(self.db, self.clock)
        self.limiter = RateLimiter(settings.rate_limit_per_minute, self.clock.now)
        self.personas = PersonaService(
            self.db, self.clock, settings.max_personas_per_user, self.events, self.fleet
        )
        self.sessions = SessionService(self.db, self.clock, self.personas)
        self.llm = InstrumentedLLM(llm or build_provider(settings, self.clock), self.metrics)
        self._owns_embedder = embedder is None
        self.memory = MemoryService(
            self.db,
            self.clock,
            settings,
            InstrumentedEmbedder(embedder or build_embedder(settings), self.metrics),
            self.fleet,
        )
        self.tiers = TierService(self.db, self.clock, settings, self.memory.embedder, self.llm)
        self.decay = DecayService(
            self.db, self.clock, settings, self.events, self.fleet, self.election
        )
        self.pruning = PruningService(
            self.db, self.clock, settings, self.memory, self.events, self.fleet, self.election
        )
        self.memory.after_store.append(self.pruning.after_store)
        self.session_cleanup = SessionCleanupJob(
            self.sessions, settings.session_timeout_hours, self.election
        )
        self.visual = VisualService(self.db, self.clock, self.memory)
        self.conversations = ConversationEngine(
            self.db,
            self.clock,
            settings,
            self.personas,
            self.llm,
            self.memory,
            self.tiers,
            visual=self.visual,
        )
        self.social = SocialService(self.db, self.clock, self.personas, self.fleet)
        self.personas.social = self.social
        self.simulations = ChatroomService(
            self.db, self.clock, self.personas, self.social, self.memory, self.llm, self.events
        )
        self.state = StateService(
            self.db,
            self.clock,
            settings,
            self.personas,
            self.social,
            self.memory,
            self.pruning,
            self.simulations,
            self.events,
        )
        self.cards = CardService(self.clock, settings, self.personas, self.social, self.memory)
        self.graph = GraphService(
            self.db, self.clock, self.memory, self.llm, recognizer or SpacyRecognizer()
        )
        self.answers = AnswerService(self.memory, self.graph, self.llm)
        self.users = UserService(
            self.db, self.personas, self.memory, self.pruning, self.social, self.simulations
        )
        self.registry: Registry = build_registry()
        self.started_at = self.clock.now()
        self.connections = 0
        self.metrics.track_connections("websocket", lambda: self.connections)
        self.metrics.track_connections("sessions", lambda: len(self.sessions.open_sessions))

    def _fleet(self, url: str | None) -> tuple[Fleet, Election]:
        """The other instances and the job election: none on SQLite; on PostgreSQL,
        LISTEN/NOTIFY between the instances and advisory locks (see `fleet`)."""
        if url is None:
            return Solo(), Always()
        peers = Peers(url, self.events.deliver)
        self.events.relay = peers.relay
        return peers, Advisory(url, self.clock, peers.instance_id)

    def _follow_fleet(self, background: bool) -> None:
        """What a change announced by another instance reloads here (`background`: this
        process runs background jobs, so it follows the decay job's start and stop)."""

        async def personas(user_id: str) -> None:
            await self.personas.reload_user(user_id)
            await self.social.reload_user(user_id)

        async def config(user_id: str) -> None:
            self.memory.forget_config(user_id)
            self.pruning.forget_config(user_id)

        async def everything() -> None:
            await self.personas.load()
            await self.social.load()
            for user_id in self.personas.users():
                await config(user_id)
            await self.decay.reload(follow=background)

        async def decay(_scope: str) -> None:
            await self.decay.reload(follow=background)

        self.fleet.on_change("personas", personas)
        self.fleet.on_change("social", self.social.reload_user)
        self.fleet.on_change("config", config)
        self.fleet.on_change("decay", decay)
        self.fleet.on_resync(everything)

    async def start(self, background: bool = True) -> None:
        """Open the database and load state; with `background`, start background work
        (embedding backfill, and the jobs of the lifecycle)."""
        await self.db.open()
        self._follow_fleet(background and self.settings.background_processing)
        await self.fleet.start()  # listening before loading: no change falls in between
        await self.personas.load()
        if self.settings.auth_mode == "off":
            await self.personas.ensure_user(LOCAL_USER)
        await self.social.load()
        if stopped := await self.simulations.recover():
            log.warning("%d simulations were interrupted by a restart; marked stopped", stopped)
        await self.memory.start(backfill=background)  # the model loads in the background
        interrupted = await self.pruning.recover()
        if interrupted:
            log.warning("%d prune runs were interrupted; their archive is intact", interrupted)
        if background and self.settings.background_processing:
            if (await self.decay.config()).enabled:
                await self.decay.start_job()
            self.session_cleanup.start()
        if background and self.settings.simulate_turns:
            names = [p.name for p in self.personas.visible(LOCAL_USER) if p.builtin]
            sim = await self.simulations.start(
                LOCAL_USER, names, STARTUP_TOPIC, self.settings.simulate_turns
            )
            log.info("chatroom %s started: %s on %r", sim.id, ", ".join(names), STARTUP_TOPIC)
        log.info("database ready at %s", self.storage_name)

    async def close(self) -> None:
        await self.simulations.close()
        await self.decay.stop_job()
        await self.session_cleanup.stop()
        await self.conversations.drain()
        await self.memory.close(close_embedder=self._owns_embedder)
        await self.graph.aclose()
        await self.llm.aclose()
        await self.fleet.close()
        await self.db.close()

    async def metrics_text(self) -> bytes:
        """The Prometheus exposition, with the figures the database holds read now."""
        await self.db.read(self.metrics.refresh)
        self.metrics.snapshot.job_runs[("session_cleanup", "background")] = (
            self.session_cleanup.runs
        )
        return self.metrics.render()

    # -- figures for system.status --------------------------------------------------

    async def counts(self, user_id: str) -> dict[str, int]:
        return await self.db.read(lambda conn: persona_store.counts_for_user(conn, user_id))

    async def memory_count(self, user_id: str, persona_id: str) -> int:
        return await self.memory.count(user_id, persona_id)

    def embedder_status(self) -> dict[str, Any]:
        return self.memory.embedder.status()

    def background_status(self) -> dict[str, Any]:
        return {
            "enabled": self.settings.background_processing,
            "decay_running": self.decay.running,
            "session_cleanup_interval_seconds": self.session_cleanup.interval_seconds,
            "sessions_closed": self.session_cleanup.closed_total,
            # Passes this instance's timer ran; with other instances, the others' ticks
            # found the interval taken (see jobs.election).
            "decay_runs_here": self.decay.background_runs,
            "job_ticks_skipped": self.election.skipped,
            "fleet": self.fleet.status(),
        }

    @property
    def storage_name(self) -> str:
        """Where the store is, for logs: the SQLite file, or the PostgreSQL URI without
        its password."""
        return storage_name(self.settings)

    async def storage_status(self) -> dict[str, Any]:
        if self.settings.database_url:
            size = await self.db.read(metrics_store.database_bytes)
            return {
                "backend": "postgresql",
                "url": redacted_url(self.settings.database_url),
                "bytes": size,
            }
        return sqlite_files(self.settings.db_path)


def sqlite_files(path: Path) -> dict[str, Any]:
    """The SQLite store's files and their sizes (the database and its write-ahead log)."""
    sizes = {
        suffix or "db": os.path.getsize(f"{path}{suffix}")
        for suffix in ("", "-wal")
        if os.path.exists(f"{path}{suffix}")
    }
    return {"backend": "sqlite", "path": str(path), "bytes": sum(sizes.values()), "files": sizes}
