"""Every operation the server offers, gathered into the one registry."""

from __future__ import annotations

from persona_mcp.operations import (
    conversation,
    lifecycle,
    memory,
    memoryos,
    personas,
    portability,
    simulation,
    social,
    system,
)
from persona_mcp.operations.registry import CallContext, Operation, Registry

OPERATION_SETS = (
    personas.ops,
    social.ops,
    conversation.ops,
    memory.ops,
    memoryos.ops,
    lifecycle.ops,
    simulation.ops,
    system.ops,
    portability.ops,
)


def build_registry() -> Registry:
    return Registry(OPERATION_SETS)


__all__ = ["OPERATION_SETS", "CallContext", "Operation", "Registry", "build_registry"]
