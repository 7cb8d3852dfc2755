"""The MCP doors (stdio and Streamable HTTP), through the official SDK's low-level server.

Every registry operation is a tool of the same dotted name, with its params model as
`inputSchema`, its result model as `outputSchema`, the result as `structuredContent`
plus JSON text, and annotations from the registry. A failure inside a tool, bad
arguments included, is an `isError` result the model can read and fix; an unknown tool
is a JSON-RPC error. Resources expose each persona's profile and memory statistics; a
prompt renders a persona's system prompt for clients that bring their own LLM.

Sessions: stdio is one session; stateful HTTP (the `initialize` era) maps each
`Mcp-Session-Id` to a session; stateless requests (2026-07-28, or no session id) use
the user's active persona.
"""

from __future__ import annotations

import json
import logging
import warnings
from typing import Any, Protocol

import mcp_types as types
import orjson
from mcp.server import Server, ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.models import InitializationOptions
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from persona_mcp import __version__
from persona_mcp.app import App
from persona_mcp.auth.principal import LOCAL, Principal
from persona_mcp.conversation.prompt import Recalled, day, memory_block, system_prompt
from persona_mcp.errors import NotFound, PersonaMCPError
from persona_mcp.operations.registry import CallContext, Operation, Progress
from persona_mcp.sessions import Session
from persona_mcp.transports import mcp_live
from persona_mcp.transports.edge import principal_of
from persona_mcp.transports.schemas import input_schema, output_schema

log = logging.getLogger(__name__)

Ctx = ServerRequestContext[Any, Any]

INSTRUCTIONS = (
    "persona-mcp runs AI personas with long-term memory. Call persona.list to see the "
    "personas, persona.switch to pick one (by id or name), persona.chat to talk to it, and "
    "memory.store / memory.search to give it or query its memories. Persona-scoped tools "
    "accept persona_id (an id or a name); without it the active persona is used."
)
PROFILE = mcp_live.PROFILE
MEMORY_STATS = mcp_live.MEMORY_STATS
PROMPT_NAME = "persona_system_prompt"
TEMPLATES = [
    types.ResourceTemplate(
        uri_template="persona://{id}",
        name="persona profile",
        description="A persona's profile by id or name: character, state and mood",
        mime_type="application/json",
    ),
    types.ResourceTemplate(
        uri_template="persona://{id}/memory-stats",
        name="persona memory statistics",
        description="A persona's memory statistics by id or name",
        mime_type="application/json",
    ),
]
PROMPT = types.Prompt(
    name=PROMPT_NAME,
    title="Persona system prompt",
    description=(
        "A persona's system prompt (character, backstory, interests, current state), with "
        "the memories most relevant to a topic, for clients that run their own LLM"
    ),
    arguments=[
        types.PromptArgument(
            name="persona_id", description="A persona's id or name", required=True
        ),
        types.PromptArgument(
            name="topic",
            description="Recall the persona's memories about this topic",
            required=False,
        ),
    ],
)


class McpExtension(Protocol):
    """Extra tools, resources and prompts beside the registry's (conformance/fixtures.py,
    handed in only by the conformance runner). Each `call`/`read`/`get` returns None
    when the name is not its own."""

    tools: list[types.Tool]
    resources: list[types.Resource]
    resource_templates: list[types.ResourceTemplate]
    prompts: list[types.Prompt]

    async def call(
        self, ctx: Ctx, params: types.CallToolRequestParams
    ) -> types.CallToolResult | None: ...

    async def read(self, ctx: Ctx, uri: str) -> types.ReadResourceResult | None: ...

    async def get(
        self, ctx: Ctx, params: types.GetPromptRequestParams
    ) -> types.GetPromptResult | None: ...


def tool_of(op: Operation) -> types.Tool:
    return types.Tool(
        name=op.name,
        title=op.title,
        description=op.description,
        input_schema=input_schema(op.params),
        output_schema=output_schema(op.result),
        annotations=types.ToolAnnotations(
            title=op.title,
            read_only_hint=op.read_only,
            destructive_hint=op.destructive,
            idempotent_hint=op.idempotent,
            open_world_hint=op.open_world,
        ),
    )


def _error_text(exc: PersonaMCPError) -> str:
    errors = (exc.data or {}).get("errors")
    if isinstance(errors, list) and errors:
        detail = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in errors)
        return f"Invalid params: {detail}"
    return f"{exc.message} (error {exc.code})"


def _str_id(request_id: types.RequestId | None) -> str | None:
    return None if request_id is None else str(request_id)


def _error_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)


class _Server(Server[Any]):
    """The SDK server, declaring resources.listChanged on the initialize era too."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(resources_changed=True),
            experimental_capabilities,
            extensions,
        )


class McpDoor:
    """Builds the SDK server over the registry and keeps MCP sessions."""

    def __init__(
        self,
        app: App,
        transport: str,
        extension: McpExtension | None = None,
        principal: Principal | None = None,
    ) -> None:
        """`principal`: the caller of a connection without HTTP requests (stdio, whose
        token comes from PERSONA_MCP_TOKEN); HTTP requests carry theirs from the edge."""
        self.app = app
        self.transport = transport
        self.extension = extension
        self._principal = principal
        self._tools = [tool_of(op) for op in app.registry]
        if extension is not None:
            self._tools += extension.tools
        self._schemas = {t.name: t.input_schema for t in self._tools}
        self._sessions: dict[tuple[str, str], Session] = {}
        self._stdio_session: Session | None = None
        self._watchers: dict[str, mcp_live.Watcher] = {}  # by app session id
        self.logs = mcp_live.LogFeed()
        with warnings.catch_warnings():  # logging is deprecated from 2026-07-28 on only
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            self.server: Server[Any] = _Server(
                "persona-mcp",
                version=__version__,
                title="persona-mcp",
                instructions=INSTRUCTIONS,
                get_tool_input_schema=self._schemas.get,
                on_list_tools=self._list_tools,
                on_call_tool=self._call_tool,
                on_list_resources=self._list_resources,
                on_list_resource_templates=self._list_resource_templates,
                on_read_resource=self._read_resource,
                on_list_prompts=self._list_prompts,
                on_get_prompt=self._get_prompt,
                on_completion=self._complete,
                on_set_logging_level=self._set_level,
                on_subscribe_resource=self._subscribe,
                on_unsubscribe_resource=self._unsubscribe,
                on_subscriptions_listen=self._listen,
            )

    # -- sessions ------------------------------------------------------------------

    def _caller(self, ctx: Ctx) -> Principal:
        request = ctx.request
        if request is None:
            if self._principal is not None:
                return self._principal
            if self.app.settings.auth_mode == "off":
                return LOCAL
            raise MCPError(code=types.INVALID_REQUEST, message="No authenticated caller")
        return principal_of(request.scope, self.app)

    async def _session(self, ctx: Ctx) -> Session:
        user = self._caller(ctx).user_id
        request = ctx.request
        if request is None:  # stdio (or in-process): one session for the connection
            if self._stdio_session is None:
                self._stdio_session = await self.app.sessions.open(user, self.transport)
            return self._stdio_session
        header = request.headers.get("mcp-session-id")
        if not header:
            return self.app.sessions.ephemeral(user, "mcp-http")
        # Keyed by user too: a session id presented by another user is another session.
        session_id = (user, header)
        session = self._sessions.get(session_id)
        open_sessions = self.app.sessions.open_sessions
        if len(self._sessions) > 1000:  # forget sessions the idle cleanup has closed
            self._sessions = {k: s for k, s in self._sessions.items() if s.id in open_sessions}
        if session is None or session.id not in open_sessions:
            session = await self.app.sessions.open(user, "mcp-http")
            self._sessions[session_id] = session
        return session

    async def close(self) -> None:
        for watcher in list(self._watchers.values()):
            watcher.close()
        self._watchers.clear()
        self.logs.close_all()
        for session in [self._stdio_session, *self._sessions.values()]:
            if session is not None:
                await self.app.sessions.close(session)
        self._sessions.clear()
        self._stdio_session = None

    # -- tools -----------------------------------------------------------------------

    async def _list_tools(
        self, ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=self._tools)

    async def _call_tool(
        self, ctx: Ctx, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        op = self.app.registry.get(params.name)
        if op is None and self.extension is not None:
            result = await self.extension.call(ctx, params)
            if result is not None:
                return result
        if op is None:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {params.name}")
        try:
            principal = self._caller(ctx)
            session = await self._session(ctx)
            call = CallContext(app=self.app, session=session, principal=principal)
            meta: dict[str, Any] = dict(ctx.meta or {})
            token = meta.get("progress_token", meta.get("progressToken"))
            if token is not None:
                call.progress = self._progress(ctx, token)
            level = meta.get(types.LOG_LEVEL_META_KEY)
            if level in mcp_live.LEVELS:  # 2026-07-28: this call opted in to log records
                self.logs.set_level(ctx.session, ctx.session, level)
            try:
                encoded = await self.app.registry.call_json(op, params.arguments or {}, call)
            finally:
                if level in mcp_live.LEVELS:
                    await self.logs.finish(ctx.session, ctx.session)
            await self.app.sessions.touch(session)
        except PersonaMCPError as exc:
            return _error_result(_error_text(exc))
        except Exception:
            log.exception("tool %s failed", op.name)
            return _error_result(f"{op.name} failed with an internal error")
        # The JSON text as the registry encoded it, and structuredContent parsed from it:
        # one encoding, and a fresh dict the SDK may keep.
        return types.CallToolResult(
            content=[types.TextContent(text=encoded.decode())],
            structured_content=orjson.loads(encoded),
        )

    @staticmethod
    def _progress(ctx: Ctx, token: str | int) -> Progress:
        async def send(done: float, total: float | None, message: str | None) -> None:
            await ctx.session.send_progress_notification(
                token, done, total, message, related_request_id=_str_id(ctx.request_id)
            )

        return send

    # -- live: completion, logging, subscriptions --------------------------------

    async def _complete(
        self, ctx: Ctx, params: types.CompleteRequestParams
    ) -> types.CompleteResult:
        session = await self._session(ctx)
        return mcp_live.complete(self.app, session.user_id, PROMPT_NAME, params)

    async def _set_level(self, ctx: Ctx, params: types.SetLevelRequestParams) -> types.EmptyResult:
        session = await self._session(ctx)  # the MCP session's; requests come and go
        self.logs.set_level(session.id, ctx.session, params.level)
        return types.EmptyResult()

    async def _watcher(self, ctx: Ctx) -> mcp_live.Watcher:
        session = await self._session(ctx)  # the MCP session's; requests come and go
        watcher = self._watchers.get(session.id)
        if watcher is None:
            watcher = mcp_live.Watcher(
                self.app,
                session.user_id,
                ctx.session,  # its notifications go on the session's standing stream
                on_end=lambda: self._watchers.pop(session.id, None),
            )
            self._watchers[session.id] = watcher
        return watcher

    async def _subscribe(self, ctx: Ctx, params: types.SubscribeRequestParams) -> types.EmptyResult:
        (await self._watcher(ctx)).subscribe(str(params.uri))
        return types.EmptyResult()

    async def _unsubscribe(
        self, ctx: Ctx, params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        (await self._watcher(ctx)).unsubscribe(str(params.uri))
        return types.EmptyResult()

    async def _listen(
        self, ctx: Ctx, params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        session = await self._session(ctx)
        return await mcp_live.listen(self.app, session.user_id, ctx, params)

    # -- resources -------------------------------------------------------------------

    async def _list_resources(
        self, ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        session = await self._session(ctx)
        stateful = ctx.request is None or ctx.request.headers.get("mcp-session-id")
        if stateful and ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            await self._watcher(ctx)  # list_changed from now on, subscribed or not
        resources = []
        for p in self.app.personas.visible(session.user_id):
            resources.append(
                types.Resource(
                    uri=f"persona://{p.id}",
                    name=f"{p.name} (profile)",
                    description=f"{p.name}'s profile: character, interaction state and mood",
                    mime_type="application/json",
                )
            )
            resources.append(
                types.Resource(
                    uri=f"persona://{p.id}/memory-stats",
                    name=f"{p.name} (memory statistics)",
                    description=f"How many memories {p.name} holds, by type, importance and use",
                    mime_type="application/json",
                )
            )
        if self.extension is not None:
            resources += self.extension.resources
        return types.ListResourcesResult(resources=resources)

    async def _list_resource_templates(
        self, ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        extra = self.extension.resource_templates if self.extension else []
        return types.ListResourceTemplatesResult(resource_templates=[*extra, *TEMPLATES])

    async def _read_resource(
        self, ctx: Ctx, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        if self.extension is not None:
            found = await self.extension.read(ctx, uri)
            if found is not None:
                return found
        session = await self._session(ctx)
        stats = MEMORY_STATS.match(uri)
        profile = PROFILE.match(uri) if stats is None else None
        match = stats or profile
        try:
            if match is None:
                raise NotFound(uri)
            persona = self.app.personas.resolve(session.user_id, str(match["id"]))
        except NotFound as exc:
            raise MCPError(
                code=types.INVALID_PARAMS, message=f"Resource not found: {uri}", data={"uri": uri}
            ) from exc
        if stats is not None:
            data: dict[str, Any] = await self.app.memory.stats(session.user_id, persona)
        else:
            data = self.app.personas.to_model(persona, session.user_id).model_dump(mode="json")
        return types.ReadResourceResult(
            contents=[
                types.TextResourceContents(
                    uri=uri, mime_type="application/json", text=json.dumps(data, default=str)
                )
            ]
        )

    # -- prompts ---------------------------------------------------------------------

    async def _list_prompts(
        self, ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        extra = self.extension.prompts if self.extension else []
        return types.ListPromptsResult(prompts=[*extra, PROMPT])

    async def _get_prompt(
        self, ctx: Ctx, params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        if params.name != PROMPT_NAME and self.extension is not None:
            rendered = await self.extension.get(ctx, params)
            if rendered is not None:
                return rendered
        if params.name != PROMPT_NAME:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown prompt: {params.name}")
        args = params.arguments or {}
        ref = args.get("persona_id")
        if not ref:
            raise MCPError(
                code=types.INVALID_PARAMS, message="Missing required argument: persona_id"
            )
        session = await self._session(ctx)
        try:
            persona = self.app.personas.resolve(session.user_id, ref)
        except NotFound as exc:
            raise MCPError(code=types.INVALID_PARAMS, message=exc.message) from exc
        state = self.app.personas.state(persona, session.user_id)
        text = system_prompt(persona, state, self.app.personas.mood(persona, session.user_id))
        topic = args.get("topic")
        if topic:
            recalled = await self.app.memory.recall(session.user_id, persona, topic)
            if recalled:
                text += "\n\n" + memory_block(
                    [Recalled(m.content, day(m.occurred_at), m.memory_type) for m in recalled]
                )
        return types.GetPromptResult(
            description=f"System prompt for {persona.name}",
            messages=[types.PromptMessage(role="user", content=types.TextContent(text=text))],
        )


def http_manager(door: McpDoor) -> StreamableHTTPSessionManager:
    """The Streamable HTTP session manager. Host and Origin are checked by the DoorGuard
    in front of every door, so the SDK's own DNS-rebinding check is off (one check)."""
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return StreamableHTTPSessionManager(app=door.server, security_settings=security)
