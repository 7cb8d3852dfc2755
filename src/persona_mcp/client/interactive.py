"""`persona-mcp client [URL]`: an interactive client of a running server.

Every method of the server (its MCP `tools/list`, the same registry the WebSocket door
serves) can be called as `METHOD {json}`, `METHOD key=value ...` or just `METHOD`; a few
short forms cover daily use (`chat TEXT` streams the reply as it comes). Readline keeps
the history (~/.persona_mcp_history) and completes method names, commands and persona
names. Results are pretty-printed JSON; notifications (events) are shown as they arrive.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from persona_mcp.client.tools import DEFAULT_URL, Method, list_methods, ws_url
from persona_mcp.client.ws import PersonaClient, RpcError

HISTORY = Path("~/.persona_mcp_history").expanduser()
DOOR_METHODS = ("events.subscribe", "events.unsubscribe")
# Short forms: word -> (method, the param the rest of the line fills, fixed params)
SHORT: dict[str, tuple[str, str | None, dict[str, Any]]] = {
    "chat": ("persona.chat", "message", {"stream": True}),
    "say": ("persona.chat", "message", {"stream": True}),
    "use": ("persona.switch", "persona_id", {}),
    "personas": ("persona.list", None, {}),
    "status": ("persona.status", "persona_id", {}),
    "search": ("memory.search", "query", {}),
    "remember": ("memory.store", "content", {}),
    "see": ("visual.update", "description", {}),
    "save": ("state.save", "path", {}),
    "end": ("conversation.end", None, {}),
    "new": ("conversation.start", "title", {}),
}
PERSONA_WORDS = {"use", "status"}
HELP = """\
Commands:
  METHOD {json}            call any method with JSON params, e.g. memory.search {"query": "sister"}
  METHOD key=value ...     the same with named values (JSON values, else text), e.g.
                           memory.list limit=5 persona_id=Kira
  help [METHOD]            this text, or a method's description and params
  methods                  every method of the server
  quit                     leave (or Ctrl-D)
Short forms:
  chat TEXT / say TEXT     persona.chat, the reply streamed as it comes
  use NAME                 persona.switch          status [NAME]   persona.status
  personas                 persona.list            search TEXT     memory.search
  remember TEXT            memory.store            see TEXT        visual.update
  new [TITLE]              conversation.start      end             conversation.end
  save [PATH]              state.save
Tab completes methods, commands and persona names; history is kept in ~/.persona_mcp_history."""


def add_client_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    client = commands.add_parser(
        "client",
        help="an interactive client of a running server; --auto-test calls every method",
    )
    client.add_argument("url", nargs="?", default=DEFAULT_URL, help=f"default {DEFAULT_URL}")
    client.add_argument("--token", help="a bearer token (default: PERSONA_MCP_TOKEN)")
    client.add_argument(
        "--auto-test",
        action="store_true",
        help="call every method of the server in scratch personas (deleted after), print "
        "one line per method and a summary; exit 1 on any failure",
    )
    client.add_argument("--timeout", type=float, default=120.0, help="seconds per call")


def run_client_command(args: argparse.Namespace) -> int:
    url = ws_url(args.url)
    token = args.token or os.environ.get("PERSONA_MCP_TOKEN") or None
    if args.auto_test:
        from persona_mcp.client.autotest import auto_test

        return asyncio.run(auto_test(url, token, args.timeout))
    try:
        return asyncio.run(Shell(url, token, args.timeout).run())
    except (OSError, ConnectionError) as exc:
        print(f"persona-mcp client: cannot reach {url}: {exc}", file=sys.stderr)
        return 1


def parse_line(line: str) -> tuple[str, dict[str, Any]]:
    """`METHOD {json}` or `METHOD key=value ...` (or `METHOD`) as (method, params)."""
    word, _, rest = line.strip().partition(" ")
    rest = rest.strip()
    if not rest:
        return word, {}
    if rest.startswith("{"):
        params = json.loads(rest)
        if not isinstance(params, dict):
            raise ValueError("params must be a JSON object")
        return word, params
    params = {}
    for item in shlex.split(rest):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"expected key=value, got {item!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return word, params


class Shell:
    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        self.url = url
        self.token = token
        self.timeout = timeout
        self.methods: dict[str, Method] = {}
        self.personas: list[str] = []
        self.active: str | None = None
        self.client: PersonaClient | None = None

    async def run(self) -> int:
        try:
            self.methods = {m.name: m for m in await list_methods(self.url, self.token)}
        except Exception as exc:  # the shell still works without the list
            print(f"(could not read the method list: {exc})", file=sys.stderr)
        async with PersonaClient(self.url, timeout=self.timeout, token=self.token) as client:
            self.client = client
            printer = asyncio.create_task(self._notifications(client))
            self._readline()
            await self._refresh()
            print(f"connected to {self.url}: {len(self.methods)} methods; 'help' for help")
            try:
                while True:
                    try:
                        line = await asyncio.to_thread(input, self._prompt())
                    except EOFError:
                        print()
                        break
                    line = line.strip()
                    if not line:
                        continue
                    if line in {"quit", "exit"}:
                        break
                    await self.handle(line)
            finally:
                printer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await printer
                self._save_history()
        return 0

    def _prompt(self) -> str:
        return f"{self.active or 'persona-mcp'}> "

    async def handle(self, line: str) -> None:
        word = line.split(maxsplit=1)[0]
        if word == "help":
            self._help(line.split(maxsplit=1)[1].strip() if " " in line else None)
            return
        if word == "methods":
            print("\n".join(sorted([*self.methods, *DOOR_METHODS])))
            return
        try:
            method, params = self._request(line)
        except (ValueError, json.JSONDecodeError) as exc:
            print(f"cannot read that: {exc}")
            return
        await self.call(method, params)

    def _request(self, line: str) -> tuple[str, dict[str, Any]]:
        word, _, rest = line.partition(" ")
        if word in SHORT and word not in self.methods:
            method, param, fixed = SHORT[word]
            params = dict(fixed)
            if param and rest.strip():
                params[param] = rest.strip()
            return method, params
        return parse_line(line)

    async def call(self, method: str, params: dict[str, Any]) -> None:
        assert self.client is not None
        streaming = method == "persona.chat" and params.get("stream")
        try:
            result = await self.client.call(method, params)
        except RpcError as exc:
            print(f"error {exc.code}: {exc.message}")
            if exc.data:
                print(json.dumps(exc.data, indent=2, ensure_ascii=False))
            return
        if streaming:
            await asyncio.sleep(0)  # let the last pieces print
            print()
            print(
                f"[{result.get('model')} · turn {result.get('turn_number')} · continue "
                f"{result.get('continue_score', 0):.2f} · {len(result.get('memories_used', []))} "
                "memories used]"
            )
        else:
            print(json.dumps(result, indent=2, ensure_ascii=False))
        if method.startswith(("persona.", "state.")) or method == "persona.chat":
            await self._refresh()

    async def _refresh(self) -> None:
        """Persona names for completion, and the active one for the prompt."""
        assert self.client is not None
        try:
            listed = await self.client.call("persona.list")
        except (RpcError, TimeoutError, ConnectionError):
            return
        self.personas = [p["name"] for p in listed["personas"]]
        active = listed.get("active_persona_id")
        self.active = next((p["name"] for p in listed["personas"] if p["id"] == active), None)

    async def _notifications(self, client: PersonaClient) -> None:
        while True:
            note = await client.notifications.get()
            if note.get("method") == "persona.chat.delta":
                print(note["params"].get("delta", ""), end="", flush=True)
            else:
                params = json.dumps(note.get("params"), ensure_ascii=False)
                print(f"\n[{note.get('method')}] {params}")

    def _help(self, topic: str | None) -> None:
        if not topic:
            print(HELP)
            return
        method = self.methods.get(topic) or self.methods.get(SHORT.get(topic, ("",))[0])
        if method is None:
            print(f"no method {topic!r}; 'methods' lists them")
            return
        print(f"{method.name}: {method.description}")
        props = method.input_schema.get("properties", {})
        required = set(method.input_schema.get("required", []))
        for name, schema in props.items():
            kind = schema.get("type") or " | ".join(
                str(s.get("type")) for s in schema.get("anyOf", []) if s.get("type")
            )
            flag = " (required)" if name in required else ""
            print(f"  {name}: {kind}{flag}  {schema.get('description', '')}".rstrip())

    # -- readline ----------------------------------------------------------------------

    def _readline(self) -> None:
        try:
            import readline
        except ImportError:  # no readline (e.g. Windows): plain input still works
            return
        with contextlib.suppress(OSError):
            readline.read_history_file(HISTORY)
        readline.set_history_length(1000)
        readline.set_completer(self.complete)
        readline.set_completer_delims(" \t\n")
        readline.parse_and_bind("tab: complete")

    def _save_history(self) -> None:
        try:
            import readline
        except ImportError:
            return
        with contextlib.suppress(OSError):
            readline.write_history_file(HISTORY)

    def candidates(self, line: str, text: str) -> list[str]:
        """What may complete `text`, the word being typed at the end of `line`."""
        words = line.split()
        first = len(words) == 0 or (len(words) == 1 and not line.endswith(" "))
        if first:
            pool = [*self.methods, *DOOR_METHODS, *SHORT, "help", "methods", "quit"]
            return sorted({w for w in pool if w.startswith(text)})
        if words[0] in PERSONA_WORDS or words[0] == "help":
            pool = self.personas if words[0] != "help" else list(self.methods)
            return sorted(w for w in pool if w.lower().startswith(text.lower()))
        for key in ("persona_id=", "other_id="):
            if text.startswith(key):
                return [
                    key + n for n in self.personas if n.lower().startswith(text[len(key) :].lower())
                ]
        return []

    def complete(self, text: str, state: int) -> str | None:
        import readline

        options = self.candidates(readline.get_line_buffer(), text)
        return options[state] if state < len(options) else None
