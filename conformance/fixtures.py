"""The MCP conformance suite's "everything server" fixtures, for test mode only.

The official suite (`@modelcontextprotocol/conformance`) calls tools, resources and
prompts by fixed names (`test_simple_text`, `test://static-text`, `test_simple_prompt`,
...). conformance/serve.py hands them to `McpDoor` (its `extension`), beside the
registry's own; the product never imports this file. They
follow the reference everything-servers in the conformance and python-sdk repositories.

Questions to the client work in both protocol eras through `_gather`: on the handshake
era (2025-11-25) they are server-to-client requests on the originating request's stream;
on 2026-07-28, which has no back-channel, the tool returns an `InputRequiredResult` and
the client retries with `inputResponses`. Any `requestState` is sealed with the SDK's
AES-GCM codec, so a tampered echo is rejected.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import mcp_types as types
from mcp.server.connection import allowed_log_levels
from mcp.server.request_state import AESGCMRequestStateCodec, InvalidRequestState
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp.shared.uri_template import UriTemplate
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel

from persona_mcp.transports.mcp import Ctx

log = logging.getLogger(__name__)

# A 1x1 red PNG and a minimal WAV, as in the reference servers.
IMAGE_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5E"
    "rkJggg=="
)
AUDIO_WAV = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="

# SEP-1613 / SEP-2106: the full JSON Schema 2020-12 vocabulary must survive tools/list.
JSON_SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}

# SEP-1034: a default for every primitive type.
DEFAULTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "User name", "default": "John Doe"},
        "age": {"type": "integer", "description": "User age", "default": 30},
        "score": {"type": "number", "description": "User score", "default": 95.5},
        "status": {
            "type": "string",
            "description": "User status",
            "enum": ["active", "inactive", "pending"],
            "default": "active",
        },
        "verified": {"type": "boolean", "description": "Verification status", "default": True},
    },
}

# SEP-1330: the five enum shapes.
ENUMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {
            "type": "string",
            "oneOf": [
                {"const": "value1", "title": "First Option"},
                {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"},
            ],
        },
        "legacyEnum": {
            "type": "string",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {
            "type": "array",
            "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
        },
        "titledMulti": {
            "type": "array",
            "items": {
                "anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"},
                ]
            },
        },
    },
}

USER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "username": {"type": "string", "description": "User's response"},
        "email": {"type": "string", "description": "User's email address"},
    },
    "required": ["username", "email"],
}


def _string_schema(field: str) -> dict[str, Any]:
    return {"type": "object", "properties": {field: {"type": "string"}}, "required": [field]}


NO_ARGS: dict[str, Any] = {"type": "object", "properties": {}}
CONFIRM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
}

Outcome = types.CallToolResult | types.InputRequiredResult
PromptOutcome = types.GetPromptResult | types.InputRequiredResult
Answers = dict[str, types.InputResponse]
ToolHandler = Callable[[Ctx, types.CallToolRequestParams], Awaitable[Outcome]]

# What a client answers to each kind of input request.
RESULT_TYPES: dict[str, type[BaseModel]] = {
    "elicitation/create": types.ElicitResult,
    "sampling/createMessage": types.CreateMessageResult,
    "roots/list": types.ListRootsResult,
}
ANSWER_TYPES: dict[str, tuple[type[BaseModel], ...]] = {
    "elicitation/create": (types.ElicitResult,),
    "sampling/createMessage": (types.CreateMessageResult, types.CreateMessageResultWithTools),
    "roots/list": (types.ListRootsResult,),
}


def _text(text: str, *, is_error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=is_error)


def _modern(ctx: Ctx) -> bool:
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def _elicit(message: str, schema: dict[str, Any]) -> types.ElicitRequest:
    return types.ElicitRequest(
        params=types.ElicitRequestFormParams(message=message, requested_schema=schema)
    )


def _sample(prompt: str, max_tokens: int) -> types.CreateMessageRequest:
    return types.CreateMessageRequest(
        params=types.CreateMessageRequestParams(
            messages=[types.SamplingMessage(role="user", content=types.TextContent(text=prompt))],
            max_tokens=max_tokens,
        )
    )


def _field(answer: types.InputResponse, name: str) -> str:
    """A string field of an accepted elicitation answer, or "?"."""
    if isinstance(answer, types.ElicitResult) and answer.content:
        return str(answer.content.get(name, "?"))
    return "?"


def _sampled_text(answer: types.InputResponse) -> str:
    if isinstance(answer, types.CreateMessageResult) and answer.content.type == "text":
        return answer.content.text
    return "?"


def _elicited(label: str, answer: types.InputResponse) -> str:
    if not isinstance(answer, types.ElicitResult):
        return f"{label}: unexpected answer"
    return f"{label}: action={answer.action}, content={json.dumps(answer.content or {})}"


def _door_result(outcome: Outcome) -> types.CallToolResult:
    """`McpExtension.call` is typed `CallToolResult`, but the SDK's tools/call handler also
    takes an `InputRequiredResult` (2026-07-28 multi-round trip) and `McpDoor` passes the
    extension's result through unchanged. Widening the Protocol would make this cast go."""
    return cast(types.CallToolResult, outcome)


def _door_prompt(outcome: PromptOutcome) -> types.GetPromptResult:
    """As `_door_result`, for prompts/get."""
    return cast(types.GetPromptResult, outcome)


@dataclass(frozen=True)
class Fixture:
    tool: types.Tool
    run: ToolHandler


class ConformanceFixtures:
    """The everything-server tools, resources and prompts (an `McpExtension`)."""

    def __init__(self) -> None:
        self._codec = AESGCMRequestStateCodec([secrets.token_bytes(32)])
        self._fixtures = {f.tool.name: f for f in self._build()}
        self.tools: list[types.Tool] = [f.tool for f in self._fixtures.values()]
        self.resources: list[types.Resource] = [
            types.Resource(
                uri="test://static-text",
                name="static-text",
                description="A static text resource for testing",
                mime_type="text/plain",
            ),
            types.Resource(
                uri="test://static-binary",
                name="static-binary",
                description="A static binary resource (image) for testing",
                mime_type="image/png",
            ),
            types.Resource(
                uri="test://watched-resource",
                name="watched-resource",
                description="A resource that can be subscribed to for updates",
                mime_type="text/plain",
            ),
        ]
        self.resource_templates: list[types.ResourceTemplate] = [
            types.ResourceTemplate(
                uri_template="test://template/{id}/data",
                name="template",
                description="A resource template with parameter substitution",
                mime_type="application/json",
            )
        ]
        self.prompts: list[types.Prompt] = [
            types.Prompt(
                name="test_simple_prompt", description="A simple prompt without arguments"
            ),
            types.Prompt(
                name="test_prompt_with_arguments",
                description="A prompt with required arguments",
                arguments=[
                    types.PromptArgument(name="arg1", description="First argument", required=True),
                    types.PromptArgument(name="arg2", description="Second argument", required=True),
                ],
            ),
            types.Prompt(
                name="test_prompt_with_embedded_resource",
                description="A prompt that includes an embedded resource",
                arguments=[
                    types.PromptArgument(
                        name="resourceUri",
                        description="URI of the resource to embed",
                        required=True,
                    )
                ],
            ),
            types.Prompt(
                name="test_prompt_with_image", description="A prompt that includes image content"
            ),
            types.Prompt(
                name="test_input_required_result_prompt",
                description="A prompt that asks the client for context first (SEP-2322)",
            ),
        ]
        self._template = UriTemplate.parse("test://template/{id}/data")

    # -- McpExtension ----------------------------------------------------------------

    async def call(
        self, ctx: Ctx, params: types.CallToolRequestParams
    ) -> types.CallToolResult | None:
        fixture = self._fixtures.get(params.name)
        if fixture is None:
            return None
        try:
            return _door_result(await fixture.run(ctx, params))
        except MCPError:
            raise  # deliberate (missing capability, bad requestState) or the client's answer
        except Exception as exc:
            log.exception("fixture %s failed", params.name)
            return _text(f"{params.name} failed: {exc}", is_error=True)

    async def read(self, ctx: Ctx, uri: str) -> types.ReadResourceResult | None:
        contents: types.TextResourceContents | types.BlobResourceContents
        if uri == "test://static-text":
            text = "This is the content of the static text resource."
            contents = types.TextResourceContents(uri=uri, mime_type="text/plain", text=text)
        elif uri == "test://static-binary":
            contents = types.BlobResourceContents(uri=uri, mime_type="image/png", blob=IMAGE_PNG)
        elif uri == "test://watched-resource":
            text = "Watched resource content"
            contents = types.TextResourceContents(uri=uri, mime_type="text/plain", text=text)
        elif (match := self._template.match(uri)) is not None:
            item = str(match["id"])
            data = {"id": item, "templateTest": True, "data": f"Data for ID: {item}"}
            contents = types.TextResourceContents(
                uri=uri, mime_type="application/json", text=json.dumps(data)
            )
        else:
            return None
        return types.ReadResourceResult(contents=[contents])

    async def get(
        self, ctx: Ctx, params: types.GetPromptRequestParams
    ) -> types.GetPromptResult | None:
        args = params.arguments or {}

        def user(content: types.ContentBlock) -> types.PromptMessage:
            return types.PromptMessage(role="user", content=content)

        def required(name: str) -> str:
            value = args.get(name)
            if not value:
                raise MCPError(
                    code=types.INVALID_PARAMS, message=f"Missing required argument: {name}"
                )
            return value

        if params.name == "test_simple_prompt":
            messages = [user(types.TextContent(text="This is a simple prompt for testing."))]
        elif params.name == "test_prompt_with_arguments":
            text = f"Prompt with arguments: arg1='{required('arg1')}', arg2='{required('arg2')}'"
            messages = [user(types.TextContent(text=text))]
        elif params.name == "test_prompt_with_embedded_resource":
            resource = types.TextResourceContents(
                uri=required("resourceUri"),
                mime_type="text/plain",
                text="Embedded resource content for testing.",
            )
            messages = [
                user(types.EmbeddedResource(resource=resource)),
                user(types.TextContent(text="Please process the embedded resource above.")),
            ]
        elif params.name == "test_prompt_with_image":
            messages = [
                user(types.ImageContent(data=IMAGE_PNG, mime_type="image/png")),
                user(types.TextContent(text="Please analyze the image above.")),
            ]
        elif params.name == "test_input_required_result_prompt":
            question = _elicit("What context should the prompt use?", _string_schema("context"))
            got = await self._gather(ctx, params, {"user_context": question})
            if isinstance(got, types.InputRequiredResult):
                return _door_prompt(got)
            text = f"Use the following context: {_field(got['user_context'], 'context')}"
            messages = [user(types.TextContent(text=text))]
        else:
            return None
        return types.GetPromptResult(messages=messages)

    # -- asking the client -------------------------------------------------------------

    async def _gather(
        self,
        ctx: Ctx,
        params: types.CallToolRequestParams | types.GetPromptRequestParams,
        requests: Mapping[str, types.InputRequest],
        state: str | None = None,
    ) -> Answers | types.InputRequiredResult:
        """Answers to every request, or (2026-07-28) an `InputRequiredResult` asking for
        all of them again when any is missing or of the wrong kind."""
        if _modern(ctx):
            given = params.input_responses or {}
            answers: Answers = {}
            for key, request in requests.items():
                answer = given.get(key)
                if not isinstance(answer, ANSWER_TYPES[request.method]):
                    return types.InputRequiredResult(
                        input_requests=dict(requests), request_state=state
                    )
                answers[key] = answer
            return answers
        answers = {}
        related = ServerMessageMetadata(related_request_id=ctx.request_id)
        for key, request in requests.items():
            result = await ctx.session.send_request(
                request, RESULT_TYPES[request.method], metadata=related
            )
            answers[key] = cast(types.InputResponse, result)
        return answers

    def _seal(self, tool: str, **data: Any) -> str:
        payload = {"tool": tool, "nonce": secrets.token_hex(8), **data}
        return self._codec.seal(json.dumps(payload).encode())

    def _unseal(self, tool: str, params: types.CallToolRequestParams) -> dict[str, Any]:
        """The plaintext of an echoed requestState ({} when absent); an invalid one, or
        one minted for another tool, is a JSON-RPC error."""
        if params.request_state is None:
            return {}
        try:
            data = json.loads(self._codec.unseal(params.request_state))
        except (InvalidRequestState, ValueError) as exc:
            raise MCPError(
                code=types.INVALID_PARAMS, message="requestState failed its integrity check"
            ) from exc
        if not isinstance(data, dict) or data.get("tool") != tool:
            raise MCPError(
                code=types.INVALID_PARAMS, message="requestState was not issued for this tool"
            )
        return data

    async def _log(self, ctx: Ctx, level: types.LoggingLevel, message: str) -> None:
        """A log notification on this request's stream, if this request may receive it (on
        2026-07-28 only when its `_meta` opted in to that level)."""
        if level not in allowed_log_levels(ctx.protocol_version, ctx.meta):
            return
        notification = types.LoggingMessageNotification(
            params=types.LoggingMessageNotificationParams(
                level=level, data=message, logger="conformance"
            )
        )
        await ctx.session.send_notification(notification, related_request_id=ctx.request_id)

    # -- tools ---------------------------------------------------------------------------

    def _build(self) -> list[Fixture]:
        def fixture(
            name: str, description: str, run: ToolHandler, schema: dict[str, Any] | None = None
        ) -> Fixture:
            tool = types.Tool(name=name, description=description, input_schema=schema or NO_ARGS)
            return Fixture(tool, run)

        return [
            fixture("test_simple_text", "Tests simple text content response", self._simple_text),
            fixture("test_image_content", "Tests image content response", self._image),
            fixture("test_audio_content", "Tests audio content response", self._audio),
            fixture("test_embedded_resource", "Tests embedded resource content", self._embedded),
            fixture(
                "test_multiple_content_types",
                "Tests response with multiple content types (text, image, resource)",
                self._multiple,
            ),
            fixture(
                "test_tool_with_logging",
                "Tests tool that emits log messages during execution",
                self._with_logging,
            ),
            fixture(
                "test_tool_with_progress",
                "Tests tool that reports progress notifications",
                self._with_progress,
            ),
            fixture("test_error_handling", "Tests error response handling", self._error),
            fixture(
                "test_sampling",
                "Tests server-initiated sampling (LLM completion request)",
                self._sampling,
                _string_schema("prompt"),
            ),
            fixture(
                "test_elicitation",
                "Tests server-initiated elicitation (user input request)",
                self._elicitation,
                _string_schema("message"),
            ),
            fixture(
                "test_elicitation_sep1034_defaults",
                "Tests elicitation with default values for all primitive types (SEP-1034)",
                self._elicitation_defaults,
            ),
            fixture(
                "test_elicitation_sep1330_enums",
                "Tests elicitation with enum schema variations (SEP-1330)",
                self._elicitation_enums,
            ),
            fixture(
                "json_schema_2020_12_tool",
                "Tool with JSON Schema 2020-12 features",
                self._json_schema,
                JSON_SCHEMA_2020_12,
            ),
            fixture(
                "test_x_mcp_header",
                "Tests Mcp-Param-* header validation (SEP-2243)",
                self._x_mcp_header,
                {
                    "type": "object",
                    "properties": {
                        "region": {
                            "type": "string",
                            "description": "Mirrored into the Mcp-Param-Region header",
                            "x-mcp-header": "Region",
                        }
                    },
                },
            ),
            fixture(
                "test_reconnection",
                "Closes the SSE stream mid-call when the transport can resume (SEP-1699)",
                self._reconnection,
            ),
            fixture(
                "test_missing_capability",
                "Requires the client's sampling capability (-32021 without it)",
                self._missing_capability,
            ),
            fixture(
                "test_logging_tool",
                "Logs only when the request opted in to a log level (2026-07-28)",
                self._logging_tool,
            ),
            fixture(
                "test_streaming_elicitation",
                "Asks the client a question on the request's own stream",
                self._streaming_elicitation,
            ),
            fixture(
                "test_input_required_result_elicitation",
                "InputRequiredResult with one elicitation request (SEP-2322)",
                self._irr_elicitation,
            ),
            fixture(
                "test_input_required_result_sampling",
                "InputRequiredResult with one sampling request (SEP-2322)",
                self._irr_sampling,
            ),
            fixture(
                "test_input_required_result_list_roots",
                "InputRequiredResult with one roots/list request (SEP-2322)",
                self._irr_list_roots,
            ),
            fixture(
                "test_input_required_result_request_state",
                "InputRequiredResult whose requestState must round-trip (SEP-2322)",
                self._irr_request_state,
            ),
            fixture(
                "test_input_required_result_multiple_inputs",
                "InputRequiredResult with elicitation, sampling and roots together (SEP-2322)",
                self._irr_multiple_inputs,
            ),
            fixture(
                "test_input_required_result_multi_round",
                "Two rounds of InputRequiredResult with evolving requestState (SEP-2322)",
                self._irr_multi_round,
            ),
            fixture(
                "test_input_required_result_tampered_state",
                "Rejects a tampered requestState (SEP-2322)",
                self._irr_tampered_state,
            ),
            fixture(
                "test_input_required_result_capabilities",
                "Asks only for what the client declared it supports (SEP-2322)",
                self._irr_capabilities,
            ),
        ]

    async def _simple_text(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        return _text("This is a simple text response for testing.")

    async def _image(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        return types.CallToolResult(
            content=[types.ImageContent(data=IMAGE_PNG, mime_type="image/png")]
        )

    async def _audio(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        return types.CallToolResult(
            content=[types.AudioContent(data=AUDIO_WAV, mime_type="audio/wav")]
        )

    async def _embedded(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        resource = types.TextResourceContents(
            uri="test://embedded-resource",
            mime_type="text/plain",
            text="This is an embedded resource content.",
        )
        return types.CallToolResult(content=[types.EmbeddedResource(resource=resource)])

    async def _multiple(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        resource = types.TextResourceContents(
            uri="test://mixed-content-resource",
            mime_type="application/json",
            text=json.dumps({"test": "data", "value": 123}),
        )
        return types.CallToolResult(
            content=[
                types.TextContent(text="Multiple content types test:"),
                types.ImageContent(data=IMAGE_PNG, mime_type="image/png"),
                types.EmbeddedResource(resource=resource),
            ]
        )

    async def _with_logging(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        await self._log(ctx, "info", "Tool execution started")
        await asyncio.sleep(0.05)
        await self._log(ctx, "info", "Tool processing data")
        await asyncio.sleep(0.05)
        await self._log(ctx, "info", "Tool execution completed")
        return _text("Tool with logging executed successfully")

    async def _with_progress(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        for step in (0, 50, 100):
            if step:
                await asyncio.sleep(0.05)
            await ctx.session.report_progress(step, 100, f"Completed step {step} of 100")
        return _text(str((ctx.meta or {}).get("progress_token", 0)))

    async def _error(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        return _text("This tool intentionally returns an error for testing", is_error=True)

    async def _sampling(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        prompt = (params.arguments or {}).get("prompt")
        if not isinstance(prompt, str):
            return _text("Invalid params: prompt: a string is required", is_error=True)
        got = await self._gather(ctx, params, {"sampling": _sample(prompt, 100)})
        if isinstance(got, types.InputRequiredResult):
            return got
        return _text(f"LLM response: {_sampled_text(got['sampling'])}")

    async def _elicitation(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        message = (params.arguments or {}).get("message")
        if not isinstance(message, str):
            return _text("Invalid params: message: a string is required", is_error=True)
        got = await self._gather(ctx, params, {"user": _elicit(message, USER_SCHEMA)})
        if isinstance(got, types.InputRequiredResult):
            return got
        return _text(_elicited("User response", got["user"]))

    async def _elicitation_defaults(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        request = _elicit("Please provide user information", DEFAULTS_SCHEMA)
        got = await self._gather(ctx, params, {"user": request})
        if isinstance(got, types.InputRequiredResult):
            return got
        return _text(_elicited("Elicitation completed", got["user"]))

    async def _elicitation_enums(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        request = _elicit("Please select values using different enum schema types", ENUMS_SCHEMA)
        got = await self._gather(ctx, params, {"choices": request})
        if isinstance(got, types.InputRequiredResult):
            return got
        return _text(_elicited("Elicitation completed", got["choices"]))

    async def _json_schema(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        return _text(f"json_schema_2020_12_tool received {json.dumps(params.arguments or {})}")

    async def _x_mcp_header(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        return _text(f"region={(params.arguments or {}).get('region', '<none>')}")

    async def _reconnection(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        await self._log(ctx, "info", "Before disconnect")
        if ctx.close_sse_stream is not None:  # only with an event store to resume from
            await ctx.close_sse_stream()
        await asyncio.sleep(0.2)
        await self._log(ctx, "info", "After reconnect")
        return _text("Reconnection test completed")

    async def _missing_capability(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        capabilities = ctx.session.client_capabilities
        if capabilities is None or capabilities.sampling is None:
            raise MCPError(
                code=types.MISSING_REQUIRED_CLIENT_CAPABILITY,
                message="This tool requires the client 'sampling' capability",
                data={"requiredCapabilities": {"sampling": {}}},
            )
        return _text("Client declared sampling capability; proceeding.")

    async def _logging_tool(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        await self._log(ctx, "info", "Diagnostic trace logging activated")
        return _text("Logging evaluated")

    async def _streaming_elicitation(
        self, ctx: Ctx, params: types.CallToolRequestParams
    ) -> Outcome:
        await ctx.session.report_progress(50, 100, "Asking the client")
        got = await self._gather(ctx, params, {"confirm": _elicit("Continue?", CONFIRM_SCHEMA)})
        if isinstance(got, types.InputRequiredResult):
            return got
        return _text("Streaming complete")

    async def _irr_elicitation(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        question = _elicit("What is your name?", _string_schema("name"))
        got = await self._gather(ctx, params, {"user_name": question})
        if isinstance(got, types.InputRequiredResult):
            return got
        return _text(f"Hello, {_field(got['user_name'], 'name')}!")

    async def _irr_sampling(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        question = _sample("What is the capital of France?", 100)
        got = await self._gather(ctx, params, {"capital_question": question})
        if isinstance(got, types.InputRequiredResult):
            return got
        return _text(f"Model said: {_sampled_text(got['capital_question'])}")

    async def _irr_list_roots(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        got = await self._gather(ctx, params, {"client_roots": types.ListRootsRequest()})
        if isinstance(got, types.InputRequiredResult):
            return got
        answer = got["client_roots"]
        roots = answer.roots if isinstance(answer, types.ListRootsResult) else []
        return _text(f"Client exposed {len(roots)} root(s): {', '.join(str(r.uri) for r in roots)}")

    async def _irr_request_state(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        tool = params.name
        state = self._unseal(tool, params)
        confirm = _elicit("Please confirm", CONFIRM_SCHEMA)
        if _modern(ctx) and not state:  # round 1, or a retry that lost its state
            return types.InputRequiredResult(
                input_requests={"confirm": confirm}, request_state=self._seal(tool)
            )
        got = await self._gather(ctx, params, {"confirm": confirm}, self._seal(tool))
        if isinstance(got, types.InputRequiredResult):
            return got
        return _text(f"state-ok: confirmation received ({_field(got['confirm'], 'ok')})")

    async def _irr_multiple_inputs(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        tool = params.name
        self._unseal(tool, params)
        requests: dict[str, types.InputRequest] = {
            "user_name": _elicit("What is your name?", _string_schema("name")),
            "greeting": _sample("Generate a greeting", 50),
            "client_roots": types.ListRootsRequest(),
        }
        got = await self._gather(ctx, params, requests, self._seal(tool))
        if isinstance(got, types.InputRequiredResult):
            return got
        return _text(f"All inputs received from {_field(got['user_name'], 'name')}.")

    async def _irr_multi_round(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        tool = params.name
        state = self._unseal(tool, params)
        step2 = {"step2": _elicit("Step 2: What is your favorite color?", _string_schema("color"))}
        name = state.get("name")
        if state.get("round") != 2:
            step1 = {"step1": _elicit("Step 1: What is your name?", _string_schema("name"))}
            got = await self._gather(ctx, params, step1, self._seal(tool, round=1))
            if isinstance(got, types.InputRequiredResult):
                return got
            name = _field(got["step1"], "name")
            if _modern(ctx):  # the answers of this round are gone once the result is sent
                return types.InputRequiredResult(
                    input_requests=step2, request_state=self._seal(tool, round=2, name=name)
                )
        got = await self._gather(ctx, params, step2, self._seal(tool, round=2, name=name))
        if isinstance(got, types.InputRequiredResult):
            return got
        return _text(f"Multi-round complete: {name} likes {_field(got['step2'], 'color')}")

    async def _irr_tampered_state(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        tool = params.name
        state = self._unseal(tool, params)
        confirm = _elicit("Please confirm", CONFIRM_SCHEMA)
        if _modern(ctx) and not state:
            return types.InputRequiredResult(
                input_requests={"confirm": confirm}, request_state=self._seal(tool)
            )
        got = await self._gather(ctx, params, {"confirm": confirm}, self._seal(tool))
        if isinstance(got, types.InputRequiredResult):
            return got
        return _text("integrity-ok: state verified")

    async def _irr_capabilities(self, ctx: Ctx, params: types.CallToolRequestParams) -> Outcome:
        tool = params.name
        self._unseal(tool, params)
        capabilities = ctx.session.client_capabilities or types.ClientCapabilities()
        requests: dict[str, types.InputRequest] = {}
        if capabilities.sampling is not None:
            requests["sample"] = _sample("Say hello", 50)
        if capabilities.elicitation is not None:
            requests["ask"] = _elicit("What is your name?", _string_schema("name"))
        if not requests:
            return _text("No supported capabilities declared")
        got = await self._gather(ctx, params, requests, self._seal(tool))
        if isinstance(got, types.InputRequiredResult):
            return got
        return _text(f"capabilities-ok: received {','.join(sorted(got))}")
