"""Python clients for the server's doors."""

from persona_mcp.client.ws import PersonaClient, RpcError

__all__ = ["PersonaClient", "RpcError"]
