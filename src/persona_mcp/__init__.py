"""persona-mcp: a local-first persona and long-term memory server."""

__version__ = "0.2.0"
