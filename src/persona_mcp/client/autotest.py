"""`persona-mcp client URL --auto-test`: every method of a live server, once, safely.

The methods come from the server's own MCP `tools/list`; each is called over the
WebSocket door with params that make sense for it, in scratch personas made for the run
and deleted after it. One line per method (PASS/FAIL, time, a note), then a summary; the
exit code is 1 if any method failed or any listed method went unexercised.

What touches more than the scratch personas is done so that nothing changes: settings
are set to the values they hold, pruning across personas is a dry run, the decay job is
left as it was found, and `state.load` loads (in merge mode) the file `state.save` has
just written, which holds the user's state as it is.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from persona_mcp.client.tools import Method, list_methods
from persona_mcp.client.ws import PersonaClient, RpcError

Print = Callable[[str], None]
FORBIDDEN = -32003
CONFLICT = -32002
UNAVAILABLE = -32005
INVALID_PARAMS = -32602
NOT_FOUND = -32001
# Calls the WebSocket door answers beside the registry's tools, exercised too.
EXTRAS = ("persona.memory", "memory.get_stats", "events.subscribe", "events.unsubscribe")
STATE_FILE = "persona-mcp-auto-test.jsonl.gz"
LATER = {"persona.delete"}  # exercised by the clean-up


@dataclass
class Outcome:
    method: str
    ok: bool
    seconds: float
    note: str = ""


@dataclass
class Run:
    client: PersonaClient
    out: Print
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    results: dict[str, Outcome] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    scratch: list[str] = field(default_factory=list)  # persona ids to delete at the end

    async def check(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        accept: tuple[int, ...] = (),
        expect: Callable[[Any], str | None] | None = None,
    ) -> Any:
        """Call `method`, record PASS/FAIL (an error whose code is in `accept` passes,
        noted), print the line, and return the result (None when it failed)."""
        started = time.perf_counter()
        result: Any = None
        note = ""
        ok = True
        try:
            result = await self.client.call(method, params or {})
            if expect is not None:
                problem = expect(result)
                if problem:
                    ok, note = False, problem
        except RpcError as exc:
            if exc.code in accept:
                note = f"answered {exc.code} as expected ({_short(exc.message)})"
            else:
                ok, note = False, f"error {exc.code}: {_short(exc.message)}"
        except (TimeoutError, ConnectionError, OSError) as exc:
            ok, note = False, f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - started
        if method not in self.results or (self.results[method].ok and not ok):
            self.results[method] = Outcome(method, ok, seconds, note)
            self.out(_line(self.results[method]))
        return result if ok else None

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """A helper call that is not a test of its own (errors propagate)."""
        return await self.client.call(method, params or {})


def _short(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _line(o: Outcome) -> str:
    status = "PASS" if o.ok else "FAIL"
    return f"{status}  {o.method:<32} {o.seconds * 1000:9.1f} ms  {o.note}".rstrip()


def _has(*keys: str) -> Callable[[Any], str | None]:
    def check(result: Any) -> str | None:
        missing = [k for k in keys if not isinstance(result, dict) or k not in result]
        return f"result lacks {', '.join(missing)}" if missing else None

    return check


# -- the cases, in order ---------------------------------------------------------------------

Case = Callable[[Run], Awaitable[None]]


async def _system(run: Run) -> None:
    await run.check("system.status", expect=_has("version", "counts", "llm"))
    await run.check("system.models", accept=(UNAVAILABLE,), expect=_has("models"))


async def _personas(run: Run) -> None:
    listed = await run.check("persona.list", expect=_has("personas"))
    run.values["active"] = (listed or {}).get("active_persona_id")
    names = [f"autotest-{run.tag}-a", f"autotest-{run.tag}-b"]
    a = await run.check(
        "persona.create",
        {
            "name": names[0],
            "description": "A scratch persona of persona-mcp client --auto-test.",
            "personality_traits": ["curious", "precise"],
            "topic_preferences": {"testing": 0.9, "sailing": 0.6},
        },
        expect=_has("persona"),
    )
    if a is None:
        raise RuntimeError("cannot create the scratch persona; stopping")
    run.values["a"] = a["persona"]["id"]
    run.scratch.append(run.values["a"])
    b = await run.call(
        "persona.create",
        {"name": names[1], "personality_traits": ["warm"], "topic_preferences": {"sailing": 0.8}},
    )
    run.values["b"] = b["persona"]["id"]
    run.scratch.append(run.values["b"])
    pid = run.values["a"]
    await run.check("persona.update", {"persona_id": pid, "backstory": "Born in a test run."})
    await run.check("persona.switch", {"persona_id": pid}, expect=_has("active_persona"))
    await run.check("persona.status", {"persona_id": pid}, expect=_has("interaction_state"))


async def _conversation(run: Run) -> None:
    pid = run.values["a"]
    await run.check("conversation.start", {"persona_id": pid, "title": "auto-test"})
    pieces: list[str] = []
    chat = await run.check(
        "persona.chat",
        {"persona_id": pid, "message": "I go sailing every Sunday with my sister.", "stream": True},
        expect=_has("response", "conversation_id"),
    )
    while not run.client.notifications.empty():
        note = run.client.notifications.get_nowait()
        if note.get("method") == "persona.chat.delta":
            pieces.append(note["params"]["delta"])
    if chat is not None and pieces and "".join(pieces) != chat["response"]:
        run.results["persona.chat"] = Outcome(
            "persona.chat", False, run.results["persona.chat"].seconds, "streamed text differs"
        )
    await run.check("conversation.status", {"persona_id": pid}, expect=_has("turns"))
    await run.check("conversation.end", {"persona_id": pid}, expect=_has("summary"))


async def _memory(run: Run) -> None:
    pid = run.values["a"]
    stored = await run.check(
        "memory.store",
        {"persona_id": pid, "content": "The user's boat is called Heron.", "memory_type": "fact"},
        expect=_has("memory"),
    )
    mid = stored["memory"]["id"] if stored else None
    batch = await run.check(
        "memory.store_batch",
        {
            "persona_id": pid,
            "memories": [
                {"content": f"Scratch note number {i} about tide tables.", "importance": 0.3}
                for i in range(12)
            ],
        },
        expect=_has("memories", "count"),
    )
    batch_ids = [m["id"] for m in (batch or {}).get("memories", [])]
    if mid:
        await run.check("memory.get", {"memory_id": mid}, expect=_has("memory"))
    await run.check(
        "memory.search", {"persona_id": pid, "query": "boat name", "limit": 5},
        expect=_has("results"),
    )  # fmt: skip
    await run.check("persona.memory", {"persona_id": pid, "query": "boat"}, expect=_has("results"))
    if mid:
        await run.check(
            "memory.update", {"memory_id": mid, "content": "The user's boat is called Grey Heron."}
        )
        await run.check("memory.history", {"memory_id": mid}, expect=_has("versions"))
        await run.check("memory.pin", {"memory_id": mid})
        await run.check("memory.unpin", {"memory_id": mid})
    await run.check("memory.list", {"persona_id": pid, "limit": 5}, expect=_has("memories"))
    await run.check("memory.stats", {"persona_id": pid}, expect=_has("total"))
    await run.check("memory.get_stats", {"persona_id": pid}, expect=_has("total"))
    if batch_ids:
        await run.check("memory.delete", {"memory_id": batch_ids[-1]}, expect=_has("deleted"))
    # Settings set to what they are: called, persisted, unchanged.
    await run.check("memory.set_importance_weights", {}, expect=_has("weights"))


async def _lifecycle(run: Run) -> None:
    pid = run.values["a"]
    decay = await run.check("memory.decay_stats", expect=_has("running", "mode"))
    await run.check("memory.decay_force", {"persona_id": pid, "hours": 1.0}, expect=_has("decayed"))
    await run.check("memory.set_decay_config", {}, accept=(FORBIDDEN,))
    was_running = bool(decay and decay["running"])
    started = await run.check(
        "memory.decay_start",
        {"interval_seconds": decay["interval_seconds"]} if decay else {},
        accept=(FORBIDDEN,),
    )
    if started is not None or was_running:
        await run.check("memory.decay_stop", accept=(FORBIDDEN,))
        if was_running and decay:  # leave the job as it was found
            await run.call(
                "memory.decay_start",
                {"interval_seconds": decay["interval_seconds"], "mode": decay["mode"]},
            )
    else:
        await run.check("memory.decay_stop", accept=(FORBIDDEN,))
    await run.check("memory.prune_recommendations", {"persona_id": pid}, expect=_has("candidates"))
    pruned = await run.check(
        "memory.prune",
        {"persona_id": pid, "strategy": "importance_only", "target_count": 10},
        expect=_has("pruned_count"),
    )
    run_id = (pruned or {}).get("prune_run_id")
    if run_id:
        await run.check("memory.restore", {"prune_run_id": run_id}, expect=_has("restored_count"))
    else:
        await run.check("memory.restore", {"memory_ids": ["no-such-memory"]})
    await run.check("memory.prune_all", {"dry_run": True}, expect=_has("pruned_count"))
    stats = await run.check("memory.prune_stats", expect=_has("runs", "config"))
    config = dict((stats or {}).get("config") or {})
    allowed = {"strategy", "prune_below", "batch_size", "auto_prune"}
    await run.check("memory.set_pruning_config", {k: v for k, v in config.items() if k in allowed})


async def _memoryos(run: Run) -> None:
    pid = run.values["a"]
    await run.check(
        "add_memory",
        {
            "persona_id": pid,
            "user_input": "My favourite harbour is Porto.",
            "agent_response": "Porto it is; I will remember.",
        },
        expect=_has("status"),
    )
    await run.check(
        "retrieve_memory", {"persona_id": pid, "query": "harbour"}, expect=_has("status")
    )
    await run.check("get_user_profile", {"persona_id": pid}, expect=_has("status"))
    await run.check("memory.tiers", {"persona_id": pid}, expect=_has("counts"))


async def _social(run: Run) -> None:
    a, b = run.values["a"], run.values["b"]
    await run.check("persona.relationship", {"persona_id": a}, expect=_has("relationships"))
    await run.check(
        "persona.compatibility", {"persona_id": a, "other_id": b}, expect=_has("compatibility")
    )
    sim = await run.check(
        "simulation.start",
        {"personas": [a, b], "topic": "the best harbour", "max_turns": 200, "seed": 7},
        expect=_has("simulation_id"),
    )
    if sim is None:
        return
    sid = sim["simulation_id"]
    await run.check("simulation.status", {"simulation_id": sid}, expect=_has("status"))
    await run.check("simulation.stop", {"simulation_id": sid}, accept=(CONFLICT,))
    await run.check("simulation.list", {"limit": 5}, expect=_has("simulations"))
    await run.check("simulation.transcript", {"simulation_id": sid}, expect=_has("turns"))


async def _portability(run: Run) -> None:
    a = run.values["a"]
    await run.check(
        "visual.update",
        {"persona_id": a, "description": "A test harbour at noon", "tags": ["harbour"],
         "expires_in_seconds": 600},
        expect=_has("visual"),
    )  # fmt: skip
    exported = await run.check(
        "persona.export_card",
        {"persona_id": a, "include_memories": True},
        expect=_has("card"),
    )
    png = await run.call("persona.export_card", {"persona_id": a, "format": "png"})
    if not base64.b64decode(png["card"]).startswith(b"\x89PNG"):
        run.results["persona.export_card"] = Outcome(
            "persona.export_card", False, 0.0, "the PNG export is not a PNG"
        )
    if exported is not None:
        imported = await run.check(
            "persona.import_card",
            {"card": exported["card"], "name": f"autotest-{run.tag}-card"},
            expect=_has("persona"),
        )
        if imported is not None:
            run.scratch.append(imported["persona"]["id"])
    # The user's state saved, then the same file loaded back in merge mode: no change.
    saved = await run.check("state.save", {"path": STATE_FILE}, expect=_has("path", "counts"))
    if saved is not None:
        await run.check(
            "state.load", {"path": saved["path"], "mode": "merge"}, expect=_has("counts")
        )


async def _events(run: Run) -> None:
    sub = await run.check(
        "events.subscribe", {"topics": ["memory.changed"]}, expect=_has("subscription_id")
    )
    await run.check(
        "events.unsubscribe",
        {"subscription_id": sub["subscription_id"]} if sub else {},
    )


CASES: tuple[Case, ...] = (
    _system,
    _personas,
    _conversation,
    _memory,
    _lifecycle,
    _memoryos,
    _social,
    _portability,
    _events,
)


async def _unknown(run: Run, method: Method) -> None:
    """A method this client has no case for (a newer server): called with no params, it
    passes if the server answers with a result or a -32602 naming the params it needs."""
    await run.check(method.name, {}, accept=(INVALID_PARAMS, FORBIDDEN, NOT_FOUND))
    outcome = run.results[method.name]
    outcome.note = ("no case here; " + outcome.note).rstrip("; ")


async def _cleanup(run: Run) -> None:
    active = run.values.get("active")
    if active and active not in run.scratch:
        with contextlib.suppress(RpcError):
            await run.call("persona.switch", {"persona_id": active})
    first = True
    for pid in run.scratch:
        if first:
            await run.check("persona.delete", {"persona_id": pid}, expect=_has("deleted"))
            first = False
        else:
            try:
                await run.call("persona.delete", {"persona_id": pid})
            except RpcError as exc:
                run.out(f"      (could not delete scratch persona {pid}: {exc.message})")


async def auto_test(
    url: str,
    token: str | None,
    timeout: float,  # noqa: ASYNC109 - a per-call time-out handed to the client
    out: Print = print,
) -> int:
    """Run every method of the server; 0 when all passed and every listed one ran."""
    try:
        methods = await list_methods(url, token)
    except Exception as exc:  # any failure to list is reported, not raised
        out(f"FAIL  tools/list: {type(exc).__name__}: {exc}")
        return 1
    listed = [m.name for m in methods]
    out(f"{url}: tools/list names {len(listed)} methods")
    started = time.perf_counter()
    async with PersonaClient(url, timeout=timeout, token=token) as client:
        run = Run(client, out)
        try:
            for case in CASES:
                await case(run)
            for method in methods:
                if method.name not in run.results and method.name not in LATER:
                    await _unknown(run, method)
        except (RpcError, RuntimeError, ConnectionError, TimeoutError) as exc:
            out(f"FAIL  the run stopped: {exc}")
            run.results.setdefault("(run)", Outcome("(run)", False, 0.0, str(exc)))
        finally:
            await _cleanup(run)
    failed = [o for o in run.results.values() if not o.ok]
    missing = [name for name in listed if name not in run.results]
    for name in missing:
        out(f"FAIL  {name:<32} {'':>12}  not exercised")
    extras = [name for name in EXTRAS if name in run.results]
    out(
        f"summary: {len(run.results) - len(failed)} passed, {len(failed) + len(missing)} failed; "
        f"{len(listed) - len(missing)}/{len(listed)} tools/list methods exercised "
        f"(+{len(extras)} aliases and door methods) in {time.perf_counter() - started:.1f} s"
    )
    return 1 if failed or missing else 0
