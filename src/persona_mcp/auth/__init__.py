"""Who is calling: the principal, bearer tokens, and the limits applied per caller."""

from persona_mcp.auth.principal import LOCAL, LOCAL_USER, Principal
from persona_mcp.auth.tokens import TokenService

__all__ = ["LOCAL", "LOCAL_USER", "Principal", "TokenService"]
