"""The chatroom simulation: 2-8 personas talk about a topic, turn by turn.

Who speaks next follows willingness: each persona still in the room (but the one who
just spoke) is weighted by its continue score (energy, fatigue, interest in what was
just said, its relationship with the last speaker, its mood) times its interest in the
last line, and one is drawn with the run's seeded `random.Random`. A persona whose score
falls below its end threshold (END_AT; reserved personas leave sooner) leaves. The run
ends at `max_turns` or when fewer than two remain.

A turn is written by the LLM when one is configured, else by `voices` (offline, in the
speaker's voice, replying to the previous speaker; deterministic for a given seed). Each
turn is one transaction: the transcript row (the group conversation) and the listeners'
changed relationships with the speaker and moods. Then each listener stores what it
heard in its own memory, and a `simulation.turn` event goes to subscribers.

Runs are background asyncio tasks owned by the service: bounded by `max_turns`, stopped
by `simulation.stop` or on shutdown, and marked stopped on the next start if the process
died mid-run. Room energy and fatigue are the run's own (they start at each persona's
resting values); they do not spend the persona's energy for talking with the user.

    python -m persona_mcp.simulation.chatroom --personas Aria,Kira --topic music
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from persona_mcp import nlp
from persona_mcp.clock import Clock
from persona_mcp.conversation import flow
from persona_mcp.conversation.prompt import system_prompt
from persona_mcp.errors import Conflict, InvalidParams, NotFound, Unavailable
from persona_mcp.events import EventBus
from persona_mcp.llm.base import ChatMessage, ChatRequest, LLMProvider
from persona_mcp.memory.service import MemoryInput, MemoryService
from persona_mcp.personas import mood as mood_rules
from persona_mcp.personas import relationships as rel_rules
from persona_mcp.personas import state as state_rules
from persona_mcp.personas.interest import topic_interest
from persona_mcp.personas.service import PersonaService
from persona_mcp.personas.social import SocialService, SocialWrites
from persona_mcp.simulation import voices
from persona_mcp.store import social as repo
from persona_mcp.store.api import Connection, Database
from persona_mcp.store.personas import PersonaRow
from persona_mcp.store.social import SimulationRow, SimulationStatus, TurnRow

log = logging.getLogger(__name__)

MIN_PERSONAS = 2
MAX_PERSONAS = 8
DEFAULT_TURNS = 12
MAX_TURNS = 200
END_AT = flow.WRAP_UP_AT  # below this continue score a persona leaves the room
RESERVED_EXTRA = 0.05  # "reserved" personas leave a little sooner
LISTEN_FATIGUE = 1.5  # listening costs too, less than speaking
LISTEN_ENERGY = 0.5
CONTEXT_LINES = 8  # lines of the room an LLM turn sees
MAX_LINE_CHARS = 2000


@dataclass
class _Run:
    sim: SimulationRow
    personas: dict[str, PersonaRow]
    states: dict[str, state_rules.StateValues]
    remaining: list[str]
    task: asyncio.Task[None] | None = None
    turns: int = 0
    lines: list[tuple[str, str]] = field(default_factory=list)  # (speaker id, text)


class ChatroomService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        personas: PersonaService,
        social: SocialService,
        memory: MemoryService,
        llm: LLMProvider,
        events: EventBus,
    ) -> None:
        self._db = db
        self._clock = clock
        self._personas = personas
        self._social = social
        self._memory = memory
        self._llm = llm
        self._events = events
        self._runs: dict[str, _Run] = {}

    async def recover(self) -> int:
        """Mark runs a previous process left running as stopped."""
        now = self._clock.now()
        return await self._db.write(lambda conn: repo.interrupted_simulations(conn, now))

    # -- starting and stopping -----------------------------------------------------------

    async def start(
        self,
        user_id: str,
        refs: list[str],
        topic: str,
        max_turns: int = DEFAULT_TURNS,
        seed: int | None = None,
        background: bool = True,
    ) -> SimulationRow:
        """Create a run and start it as a background task (or leave it to `run`)."""
        rows: list[PersonaRow] = []
        for ref in refs:
            row = self._personas.resolve(user_id, ref)
            if any(r.id == row.id for r in rows):
                raise InvalidParams.field("personas", f"{row.name} is named twice")
            rows.append(row)
        if not MIN_PERSONAS <= len(rows) <= MAX_PERSONAS:
            raise InvalidParams.field("personas", "name between 2 and 8 personas")
        if not topic.strip():
            raise InvalidParams.field("topic", "must not be empty")
        if not 1 <= max_turns <= MAX_TURNS:
            raise InvalidParams.field("max_turns", f"must be between 1 and {MAX_TURNS}")
        now = self._clock.now()
        sim = SimulationRow(
            id=str(uuid.uuid4()),
            user_id=user_id,
            topic=topic.strip(),
            personas=[r.id for r in rows],
            remaining=[r.id for r in rows],
            max_turns=max_turns,
            seed=seed if seed is not None else random.SystemRandom().randrange(1 << 31),
            status="running",
            turns=0,
            end_reason=None,
            started_at=now,
            ended_at=None,
        )
        await self._db.write(lambda conn: repo.insert_simulation(conn, sim))
        run = _Run(
            sim=sim,
            personas={r.id: r for r in rows},
            states={r.id: self._room_state(r) for r in rows},
            remaining=[r.id for r in rows],
        )
        self._runs[sim.id] = run
        if background:
            run.task = asyncio.create_task(self._guarded(run), name=f"simulation {sim.id}")
        return sim

    async def run(self, simulation_id: str) -> SimulationRow:
        """Run a started (not background) simulation to its end in this task."""
        run = self._runs[simulation_id]
        await self._guarded(run)
        return await self.get(run.sim.user_id, simulation_id)

    async def stop(self, user_id: str, simulation_id: str) -> SimulationRow:
        sim = await self.get(user_id, simulation_id)
        run = self._runs.get(simulation_id)
        if sim.status != "running" or run is None:
            raise Conflict("That simulation is not running", {"simulation_id": simulation_id})
        await self._cancel(run)
        return await self.get(user_id, simulation_id)

    async def stop_user(self, user_id: str) -> int:
        """Stop every run of a user (before their data is replaced); returns how many."""
        runs = [r for r in list(self._runs.values()) if r.sim.user_id == user_id]
        for run in runs:
            await self._cancel(run)
        return len(runs)

    async def close(self) -> None:
        """Stop every run (on shutdown); each is marked stopped."""
        for run in list(self._runs.values()):
            await self._cancel(run)

    async def _cancel(self, run: _Run) -> None:
        if run.task is not None and not run.task.done():
            run.task.cancel()
            await asyncio.gather(run.task, return_exceptions=True)

    # -- reading -------------------------------------------------------------------------

    async def get(self, user_id: str, simulation_id: str) -> SimulationRow:
        sim = await self._db.read(lambda conn: repo.get_simulation(conn, simulation_id))
        if sim is None or sim.user_id != user_id:
            raise NotFound(f"No simulation {simulation_id!r}", {"simulation_id": simulation_id})
        return sim

    async def listing(self, user_id: str, limit: int = 50) -> list[SimulationRow]:
        return await self._db.read(lambda conn: repo.list_simulations(conn, user_id, limit))

    async def transcript(self, user_id: str, simulation_id: str) -> list[TurnRow]:
        await self.get(user_id, simulation_id)
        return await self._db.read(lambda conn: repo.transcript(conn, simulation_id))

    def running(self) -> int:
        return sum(1 for r in self._runs.values() if r.task is not None and not r.task.done())

    # -- the loop ------------------------------------------------------------------------

    async def _guarded(self, run: _Run) -> None:
        status: SimulationStatus = "stopped"
        reason = "stopped"
        try:
            status, reason = await self._loop(run)
        except asyncio.CancelledError:
            status, reason = "stopped", "stopped"
            raise
        except Exception as exc:
            log.exception("simulation %s failed", run.sim.id)
            status, reason = "stopped", f"failed: {exc}"
        finally:
            now = self._clock.now()
            await asyncio.shield(
                self._db.write(
                    lambda conn: repo.finish_simulation(conn, run.sim.id, status, reason, now)
                )
            )
            self._runs.pop(run.sim.id, None)

    async def _loop(self, run: _Run) -> tuple[SimulationStatus, str]:
        rng = random.Random(run.sim.seed)
        for _ in range(run.sim.max_turns):  # bounded: one turn per pass
            if len(run.remaining) < MIN_PERSONAS:
                return "completed", "fewer than two personas remain"
            await self._turn(run, rng)
        return "completed", "max_turns reached"

    def _room_state(self, persona: PersonaRow) -> state_rules.StateValues:
        return state_rules.StateValues(
            social_energy=persona.rest_energy,
            available_time=persona.rest_time,
            interaction_fatigue=0.0,
            current_priority=persona.rest_priority,
            last_interaction=None,
            rest_energy=persona.rest_energy,
            rest_time=persona.rest_time,
        )

    def _score(self, run: _Run, pid: str) -> tuple[float, float]:
        """A persona's continue score and its interest in the last line (or the topic)."""
        persona = run.personas[pid]
        last_id, last_text = run.lines[-1] if run.lines else (None, run.sim.topic)
        interest, _ = topic_interest(last_text, persona.topic_preferences)
        user = run.sim.user_id
        rel = self._social.relationship(user, pid, last_id) if last_id and last_id != pid else None
        score = flow.continue_score(
            run.states[pid],
            interest,
            run.turns,
            rel_rules.warmth(rel),
            mood_rules.score_term(self._social.mood(user, pid)),
        )
        return score, interest

    async def _turn(self, run: _Run, rng: random.Random) -> None:
        user = run.sim.user_id
        last_id = run.lines[-1][0] if run.lines else None
        candidates = [p for p in run.remaining if p != last_id]
        scored = {p: self._score(run, p) for p in candidates}
        weights = [max(1e-3, s * (0.5 + i)) for s, i in (scored[p] for p in candidates)]
        speaker_id = rng.choices(candidates, weights)[0]
        score = scored[speaker_id][0]
        speaker = run.personas[speaker_id]
        text, model = await self._line(run, speaker, rng, score)
        now = self._clock.now()
        run.turns += 1
        run.lines.append((speaker_id, text))
        interest_speaker = scored[speaker_id][1]
        run.states[speaker_id] = state_rules.after_exchange(
            run.states[speaker_id], text, interest_speaker, now
        )
        valence = nlp.sentiment(text)
        words = len(text.split())
        writes = SocialWrites()
        listeners = [p for p in run.remaining if p != speaker_id]
        for pid in listeners:
            s = run.states[pid]
            run.states[pid] = replace(
                s,
                interaction_fatigue=min(100.0, s.interaction_fatigue + LISTEN_FATIGUE),
                social_energy=max(0.0, s.social_energy - LISTEN_ENERGY),
            )
            heard_interest, _ = topic_interest(text, run.personas[pid].topic_preferences)
            self._social.plan(
                writes,
                user,
                pid,
                speaker_id,
                valence=valence,
                interest=heard_interest,
                words=words,
                where="chatroom",
            )
        turn = TurnRow(
            simulation_id=run.sim.id,
            turn=run.turns,
            speaker_id=speaker_id,
            speaker=speaker.name,
            text=text,
            continue_score=score,
            model=model,
            at=now,
        )
        remaining = list(run.remaining)

        def write(conn: Connection) -> None:
            repo.append_turn(conn, turn, remaining)
            self._social.write(conn, writes)

        async def commit() -> None:
            await self._db.write(write)
            self._social.committed(writes)

        await asyncio.shield(commit())  # a turn is written whole, even when stopped now
        # Who leaves after this turn: their willingness has fallen below their threshold.
        left = [
            pid
            for pid in run.remaining
            if self._score(run, pid)[0] < self._end_at(run.personas[pid])
        ]
        if left:
            run.remaining = [p for p in run.remaining if p not in left]
            still = list(run.remaining)
            await asyncio.shield(
                self._db.write(lambda conn: repo.set_remaining(conn, run.sim.id, still))
            )
        await self._remember(run, speaker, text, listeners)
        self._events.publish(
            user,
            "simulation.turn",
            {
                "simulation_id": run.sim.id,
                "turn": turn.turn,
                "speaker": speaker.name,
                "speaker_id": speaker_id,
                "text": text,
                "continue_score": score,
                "model": model,
                "at": now,
                "left": [run.personas[p].name for p in left],
                "remaining": [run.personas[p].name for p in run.remaining],
            },
        )

    def _end_at(self, persona: PersonaRow) -> float:
        reserved = "reserved" in {t.lower() for t in persona.personality_traits}
        return END_AT + (RESERVED_EXTRA if reserved else 0.0)

    async def _line(
        self, run: _Run, speaker: PersonaRow, rng: random.Random, score: float
    ) -> tuple[str, str]:
        """The speaker's line: from the LLM when one is configured, else offline."""
        provider = await self._llm.resolve()
        previous = run.lines[-1] if run.lines else None
        prev_name = run.personas[previous[0]].name if previous else None
        if provider.name != "offline":
            room = "\n".join(f"{run.personas[p].name}: {t}" for p, t in run.lines[-CONTEXT_LINES:])
            ask = (
                f"You are in a group chat with {self._names(run, speaker.id)} about "
                f"{run.sim.topic}. "
                + (f"Reply to {prev_name}" if prev_name else "Open the conversation")
                + f" in one to three sentences, as {speaker.name}, without a name prefix."
            )
            mood = self._personas.mood(speaker, run.sim.user_id)
            request = ChatRequest(
                messages=[
                    ChatMessage(
                        "system",
                        system_prompt(
                            speaker, run.states[speaker.id], mood, flow.response_type(score)
                        ),
                    ),
                    ChatMessage("user", (room + "\n\n" if room else "") + ask),
                ],
                model=speaker.model,
            )
            result = await provider.generate(request)
            text = result.text.strip()
            if not text:
                raise Unavailable(f"The {result.provider} provider returned an empty reply")
            return text[:MAX_LINE_CHARS], result.model
        _, matched = topic_interest(
            previous[1] if previous else run.sim.topic, speaker.topic_preferences
        )
        agree = 0.6
        if previous is not None:
            rel = self._social.relationship(run.sim.user_id, speaker.id, previous[0])
            compat, _ = self._social.compatibility(speaker, run.personas[previous[0]])
            agree = 0.45 + 0.35 * (rel.affinity if rel else 0.0) + 0.4 * (compat - 0.4)
        text = voices.line(
            rng,
            traits=speaker.personality_traits,
            prefs=speaker.topic_preferences,
            matched_topics=matched,
            topic=run.sim.topic,
            previous=(prev_name, previous[1]) if previous and prev_name else None,
            agree_chance=max(0.1, min(0.9, agree)),
            names={p.name for p in run.personas.values()},
        )
        return text, voices.MODEL

    def _names(self, run: _Run, exclude: str) -> str:
        return ", ".join(p.name for pid, p in run.personas.items() if pid != exclude)

    async def _remember(
        self, run: _Run, speaker: PersonaRow, text: str, listeners: list[str]
    ) -> None:
        """Each listener keeps what it heard in its own memory."""
        for pid in listeners:
            await self._memory.store(
                run.sim.user_id,
                run.personas[pid],
                [
                    MemoryInput(
                        content=f"{speaker.name} said in the chatroom about "
                        f"{run.sim.topic}: {text}",
                        memory_type="conversation",
                        metadata={
                            "simulation_id": run.sim.id,
                            "speaker": speaker.name,
                            "speaker_id": speaker.id,
                            "turn": run.turns,
                        },
                        source="simulation",
                    )
                ],
            )


def summary(
    social: SocialService, user_id: str, personas: list[PersonaRow]
) -> list[dict[str, Any]]:
    """Where each persona's relationships with the others and its mood stand now."""
    out: list[dict[str, Any]] = []
    for p in personas:
        rels = {}
        for other in personas:
            if other.id == p.id:
                continue
            rel = social.relationship(user_id, p.id, other.id)
            if rel is not None:
                rels[other.name] = rel
        out.append({"persona": p, "relationships": rels, "mood": social.mood(user_id, p.id)})
    return out


if __name__ == "__main__":
    import sys

    from persona_mcp.cli import main

    sys.exit(main(["simulate", *sys.argv[1:]]))
