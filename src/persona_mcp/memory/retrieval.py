"""Hybrid ranking of a persona's memories for a query.

1. Lexical: FTS5 BM25 over the memory and its preceding memory (a second, lighter
   column), for an OR of the query's terms (long terms as prefixes); the top
   `candidates` scores, divided by the best.
2. Semantic: cosine of the query embedding with every memory of the persona.
3. Fusion of scores, not ranks: F = 0.4 * lexical + 0.6 * cosine.
4. Neighbours: a memory gains from the best of its neighbours at distance 1, 2, 3
   (insertion order, while consecutive memories are at most 2 h apart), since what
   answers a question is often spread over adjacent turns.
5. Time: when the query names a date, memories that occurred near it gain.
6. Importance and recency nudge the order among near-equals.

Tuned on LoCoMo's development split only (`benchmarks/locomo_recall.py`): R@10 0.58
(BM25) -> about 0.78, with a leave-one-conversation-out estimate close to that.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from persona_mcp import nlp
from persona_mcp.memory.dates import Interval, proximity
from persona_mcp.memory.vectors import Shelf

_TOKEN = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class RankingParams:
    candidates: int = 100  # lexical candidates
    context_weight: float = 0.4  # BM25 weight of the preceding-memory column
    lexical_weight: float = 0.4  # F = w * lexical + (1 - w) * cosine
    neighbour_weights: tuple[float, ...] = (0.40, 0.25, 0.10)  # at distance 1, 2, 3
    neighbour_gap_seconds: float = 2 * 3600.0
    date_weight: float = 0.5
    date_tau_days: float = 7.0
    prefix_min_length: int = 4
    importance_weight: float = 0.03
    recency_weight: float = 0.02
    recency_half_life_days: float = 90.0


DEFAULT_RANKING = RankingParams()


def embedding_text(content: str, context: str) -> str:
    """What is embedded for a memory: its own text (the context is indexed lexically)."""
    return content


def query_terms(query: str) -> list[str]:
    """The distinct non-stopword terms of a query, lower-cased."""
    terms: list[str] = []
    for term in _TOKEN.findall(query.lower()):
        if term not in nlp.STOPWORDS and term not in terms:
            terms.append(term)
    return terms


def matched_terms(terms: list[str], content: str) -> list[str]:
    """Which query terms a memory holds (a word starting with the term, or the term's
    stem: "lives" matches "live", "living" matches "lived")."""
    words = set(_TOKEN.findall(content.lower()))
    found = []
    for term in terms:
        stem = term[:-1] if len(term) > 4 and term.endswith("s") else term
        stem = stem[:-3] if len(stem) > 6 and stem.endswith("ing") else stem
        if any(w.startswith(stem) or (len(w) >= 4 and stem.startswith(w)) for w in words):
            found.append(term)
    return found


def match_expression(query: str, params: RankingParams = DEFAULT_RANKING) -> str | None:
    """An FTS5 query: the distinct non-stopword terms, quoted, OR-ed; long ones as prefixes."""
    terms: list[str] = []
    for term in _TOKEN.findall(query.lower()):
        if term not in nlp.STOPWORDS and term not in terms:
            terms.append(term)
    if not terms:
        return None
    return " OR ".join(
        f'"{t}"*' if len(t) >= params.prefix_min_length else f'"{t}"' for t in terms[:32]
    )


def lexical_scores(bm25: dict[int, float]) -> dict[int, float]:
    """BM25 scores (larger is better) divided by the best, so the top match counts 1."""
    best = max(bm25.values(), default=0.0)
    return {rid: s / best for rid, s in bm25.items()} if best > 0 else {}


def fused_scores(
    lexical: npt.NDArray[np.float64],
    cosine: npt.NDArray[np.float32],
    occurred: npt.NDArray[np.float64],
    dates: list[Interval],
    params: RankingParams = DEFAULT_RANKING,
) -> npt.NDArray[np.float64]:
    """Scores for every memory of a shelf (rows in insertion order)."""
    fused = params.lexical_weight * lexical + (1.0 - params.lexical_weight) * cosine
    scores = fused.astype(np.float64)
    n = len(fused)
    if n > 1:
        linked = np.abs(np.diff(occurred)) <= params.neighbour_gap_seconds  # i ~ i+1
        chain = linked.copy()
        for d, weight in enumerate(params.neighbour_weights, 1):
            if n <= d:
                break
            if d > 1:
                chain = chain[:-1] & linked[d - 1 :]  # i ~ i+d through every step between
            left = np.zeros(n)
            right = np.zeros(n)
            left[d:] = np.where(chain, fused[:-d], 0.0)
            right[:-d] = np.where(chain, fused[d:], 0.0)
            scores += weight * np.maximum(left, right)
    if dates:
        scores += params.date_weight * proximity(dates, occurred, params.date_tau_days)
    return scores


def nudge(
    score: float,
    importance: float,
    occurred_at: float,
    now: float,
    params: RankingParams = DEFAULT_RANKING,
) -> float:
    """Importance and recency break near-ties; they never outweigh relevance."""
    age_days = max(0.0, now - occurred_at) / 86400.0
    recency = math.exp(-age_days * math.log(2) / params.recency_half_life_days)
    return score + params.importance_weight * (importance - 0.5) + params.recency_weight * recency


Ranked = dict[int, tuple[float, float, float]]  # rid -> (score, lexical, cosine)


def rank_shelf(
    shelf: Shelf,
    lexical: dict[int, float],
    query_vector: npt.NDArray[np.float32],
    dates: list[Interval],
    allowed: set[int] | None,
    k: int,
    params: RankingParams = DEFAULT_RANKING,
) -> tuple[Ranked, set[int]]:
    """The top `k` memories of a shelf, and which lexical hits the shelf holds."""
    n = shelf.size
    lex = np.zeros(n)
    on_shelf: set[int] = set()
    if lexical:
        rids = list(lexical)
        pos, found = shelf.positions(rids)
        for rid, p, hit in zip(rids, pos, found, strict=True):
            if hit:
                lex[p] = lexical[rid]
                on_shelf.add(rid)
    cosine = shelf.matrix @ query_vector
    scores = fused_scores(lex, cosine, shelf.occurred, dates, params)
    if allowed is not None:
        scores = np.where(
            np.isin(shelf.rids, np.fromiter(allowed, dtype=np.int64)), scores, -np.inf
        )
    k = min(k, n)
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.isfinite(scores[top])]
    ranked = {int(shelf.rids[i]): (float(scores[i]), float(lex[i]), float(cosine[i])) for i in top}
    return ranked, on_shelf
