"""Hybrid ranking: lexical (FTS5 BM25) and semantic (cosine) scores fused, then nudged by
importance and recency.

Scores are fused, not ranks: each list is normalized against its own best candidate so
that a strong lexical match and a strong semantic match both count in full, while weak
tails count for little. Tuned on LoCoMo's development split only
(`benchmarks/locomo_recall.py`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from persona_mcp import nlp


@dataclass(frozen=True)
class RankingParams:
    lexical_weight: float = 0.5
    semantic_weight: float = 0.5
    context_weight: float = 0.4  # BM25 weight of the neighbouring-text column
    candidates: int = 100  # from each retriever
    importance_weight: float = 0.03
    recency_weight: float = 0.02
    recency_half_life_days: float = 90.0


DEFAULT_RANKING = RankingParams()


def embedding_text(content: str, context: str) -> str:
    """What is embedded for a memory: its own text (context is indexed lexically only)."""
    return content


def match_expression(query: str) -> str | None:
    """An FTS5 query: the distinct content words of `query`, quoted, joined by OR."""
    terms = list(dict.fromkeys(nlp.content_words(query)))
    if not terms:
        terms = list(dict.fromkeys(w for w in nlp.words(query) if len(w) > 1))
    if not terms:
        return None
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms[:32])


@dataclass(frozen=True)
class Candidate:
    rid: int
    lexical: float  # normalized to [0, 1]
    semantic: float  # normalized to [0, 1]
    cosine: float | None


def fuse(
    lexical: Mapping[int, float],
    cosines: Mapping[int, float],
    params: RankingParams = DEFAULT_RANKING,
) -> dict[int, Candidate]:
    """Combine raw BM25 scores and cosines of the candidate pool into normalized parts."""
    best_lex = max(lexical.values(), default=0.0)
    pool = set(lexical) | set(cosines)
    if cosines:
        hi = max(cosines.values())
        lo = min(cosines.values())
        span = hi - lo if hi > lo else 1.0
    out = {}
    for rid in pool:
        lex = lexical.get(rid, 0.0) / best_lex if best_lex > 0 else 0.0
        cos = cosines.get(rid)
        sem = (cos - lo) / span if cos is not None and cosines else 0.0
        out[rid] = Candidate(rid, lex, sem, cos)
    return out


def final_score(
    candidate: Candidate,
    importance: float,
    occurred_at: float,
    now: float,
    params: RankingParams = DEFAULT_RANKING,
    semantic_available: bool = True,
) -> float:
    if semantic_available:
        relevance = (
            params.lexical_weight * candidate.lexical + params.semantic_weight * candidate.semantic
        )
    else:
        relevance = candidate.lexical
    age_days = max(0.0, now - occurred_at) / 86400.0
    recency = math.exp(-age_days * math.log(2) / params.recency_half_life_days)
    return (
        relevance + params.importance_weight * (importance - 0.5) + params.recency_weight * recency
    )
