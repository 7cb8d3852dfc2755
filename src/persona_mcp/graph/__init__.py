"""The Persona knowledge graph: ingestion of free text, graph-aware retrieval, answers."""
