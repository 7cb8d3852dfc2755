"""Hybrid ranking of a persona's memories for a query.

1. Lexical: FTS5 BM25 over the memory and its preceding memory (a second, lighter
   column), for an OR of the query's terms (long terms as prefixes; terms that match
   thousands of memories are left out, see `within_budget`); the top `candidates`
   scores, divided by the best.
2. Semantic: cosine of the query embedding with the persona's memories (every one up
   to a few thousand, else the nearest by sign bits; see `vectors`).
3. Fusion of scores, not ranks: F = 0.4 * lexical + 0.6 * cosine.
4. Neighbours: a memory gains from the best of its neighbours at distance 1, 2, 3
   (insertion order, while consecutive memories are at most 2 h apart), since what
   answers a question is often spread over adjacent turns.
5. Time: when the query names a date, memories that occurred near it gain.
6. Importance and recency nudge the order among near-equals.

Only rows that can reach the top are scored (`rank_shelf`), so a search reads a few
thousand rows at most whatever the persona's size.

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
from persona_mcp.memory.vectors import EXACT_ROWS, Shelf, candidate_count

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
    max_terms: int = 32
    lexical_budget: int = 2000  # rows the query's terms may match in all (see within_budget)
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


def phrase(term: str, params: RankingParams = DEFAULT_RANKING) -> str:
    """A term as an FTS5 phrase: quoted, and a prefix when long enough."""
    return f'"{term}"*' if len(term) >= params.prefix_min_length else f'"{term}"'


def within_budget(
    terms: list[str], frequencies: dict[str, int], params: RankingParams = DEFAULT_RANKING
) -> list[str]:
    """The terms worth asking the full-text index for: the rarest first, while the rows
    they match (in every persona) stay within `lexical_budget`, and always the rarest.

    FTS5 reads every row a term matches, so a word found in thousands of memories costs
    thousands of rows on every query while its BM25 weight (its IDF) is the smallest of
    all; meaning still finds those memories through the embeddings. A term whose count is
    unknown or zero stays: it costs nothing."""
    known = sorted((frequencies.get(t, 0), i) for i, t in enumerate(terms))
    kept: set[int] = set()
    total = 0
    for count, i in known:
        if count and kept and total + count > params.lexical_budget:
            break
        kept.add(i)
        total += count
    return [t for i, t in enumerate(terms) if i in kept]


def match_expression(
    query: str,
    params: RankingParams = DEFAULT_RANKING,
    frequencies: dict[str, int] | None = None,
) -> str | None:
    """An FTS5 query: the distinct non-stopword terms (within budget when their row
    counts are given), quoted, OR-ed; long ones as prefixes."""
    terms = query_terms(query)[: params.max_terms]
    if frequencies is not None:
        terms = within_budget(terms, frequencies, params)
    if not terms:
        return None
    return " OR ".join(phrase(t, params) for t in terms)


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
    positions: npt.NDArray[np.int64] | None = None,
) -> npt.NDArray[np.float64]:
    """Scores for rows of a shelf: every row in insertion order, or the rows at the
    sorted `positions` (two of them are neighbours only when their positions are)."""
    fused = params.lexical_weight * lexical + (1.0 - params.lexical_weight) * cosine
    scores = fused.astype(np.float64)
    n = len(fused)
    if n > 1:
        linked = np.abs(np.diff(occurred)) <= params.neighbour_gap_seconds  # i ~ i+1
        if positions is not None:
            linked &= np.diff(positions) == 1
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


SEMANTIC_CANDIDATES = 100  # rows nearest in meaning that are scored in full
DATE_CANDIDATES = 100  # rows nearest a date the query names


def _around(core: npt.NDArray[np.int64], reach: int, size: int) -> npt.NDArray[np.int64]:
    """Sorted positions within `reach` of any position in `core`."""
    marked = np.zeros(size, dtype=bool)  # a mask, not a sort: linear in the shelf's size
    for offset in range(-reach, reach + 1):
        at = core + offset
        marked[at[(at >= 0) & (at < size)]] = True
    return np.flatnonzero(marked).astype(np.int64)


def nearest_rids(
    shelf: Shelf, query_vector: npt.NDArray[np.float32]
) -> npt.NDArray[np.int64] | None:
    """The rids of the rows nearest the query in meaning, as `rank_shelf` takes them
    (found ahead, while the full-text stage runs); None on a shelf small enough for every
    row to be scored."""
    if shelf.size <= EXACT_ROWS:
        return None
    return shelf.rids[shelf.nearest(query_vector, SEMANTIC_CANDIDATES)[0]]


def rank_shelf(
    shelf: Shelf,
    lexical: dict[int, float],
    query_vector: npt.NDArray[np.float32],
    dates: list[Interval],
    allowed: set[int] | None,
    k: int,
    params: RankingParams = DEFAULT_RANKING,
    nearest: npt.NDArray[np.int64] | None = None,
) -> tuple[Ranked, set[int]]:
    """The top `k` memories of a shelf, and which lexical hits the shelf holds.

    Only rows that can rank are scored: the nearest in meaning, the lexical hits, those
    nearest a named date (and, under a filter, the allowed rows), with their neighbours
    within reach of the neighbour bonus; the neighbours' neighbours are read too, so
    every scored row gets exactly the score a pass over the whole shelf would give.
    `nearest`: the rids `nearest_rids` found for this query, if it ran already (those
    no longer on the shelf are left out)."""
    n = shelf.size
    on_shelf: set[int] = set()
    lex_pos: list[int] = []
    lex_val: list[float] = []
    if lexical:
        rids = list(lexical)
        pos, found = shelf.positions(rids)
        for rid, p, hit in zip(rids, pos, found, strict=True):
            if hit:
                lex_pos.append(int(p))
                lex_val.append(lexical[rid])
                on_shelf.add(rid)
    allowed_pos: npt.NDArray[np.int64] | None = None
    if allowed is not None:
        pos, found = shelf.positions(sorted(allowed))
        allowed_pos = np.unique(pos[found])
    reach = len(params.neighbour_weights)
    if n <= EXACT_ROWS:
        scored = data = np.arange(n, dtype=np.int64)
    else:
        core = [np.asarray(lex_pos, dtype=np.int64)]
        if allowed_pos is not None and len(allowed_pos) <= candidate_count(n):
            core.append(allowed_pos)  # a narrow filter: every allowed row is a candidate
        elif nearest is not None:
            pos, found = shelf.positions(nearest)
            core.append(pos[found])
        else:
            core.append(shelf.nearest(query_vector, SEMANTIC_CANDIDATES)[0])
        if dates:
            near = proximity(dates, shelf.occurred, params.date_tau_days)
            m = min(DATE_CANDIDATES, n)
            best = np.argpartition(-near, m - 1)[:m]
            core.append(best[near[best] > 0].astype(np.int64))
        scored = _around(np.unique(np.concatenate(core)), reach, n)
        data = _around(scored, reach, n)
    lex = np.zeros(len(data))
    if lex_pos:
        at = np.searchsorted(data, np.asarray(lex_pos, dtype=np.int64))
        lex[at] = lex_val
    cosine = shelf.cosine(query_vector, None if len(data) == n else data)
    allowed_mask = np.isin(data, allowed_pos) if allowed_pos is not None else None
    ranked = rank_rows(
        data, scored, shelf.rids[data], lex, cosine, shelf.occurred[data], allowed_mask, dates,
        k, params,
    )  # fmt: skip
    return ranked, on_shelf


def rank_rows(
    data: npt.NDArray[np.int64],
    scored: npt.NDArray[np.int64],
    rids: npt.NDArray[np.int64],
    lexical: npt.NDArray[np.float64],
    cosine: npt.NDArray[np.float32],
    occurred: npt.NDArray[np.float64],
    allowed: npt.NDArray[np.bool_] | None,
    dates: list[Interval],
    k: int,
    params: RankingParams = DEFAULT_RANKING,
) -> Ranked:
    """The one ranking of candidate rows, whichever index found them: `data` are the
    rows' positions in the persona's insertion order (sorted; two rows are neighbours
    when their positions are consecutive), with their rids, lexical scores, cosines
    and times; `scored` the positions (a subset of `data`) that may rank, the others
    being there for their neighbour bonus; `allowed` masks rows a filter leaves out."""
    scores = fused_scores(lexical, cosine, occurred, dates, params, data)
    keep = np.searchsorted(data, scored)
    scores, lex, cos = scores[keep], lexical[keep], cosine[keep]
    if allowed is not None:
        scores = np.where(allowed[keep], scores, -np.inf)
    k = min(k, len(scored))
    if k <= 0:
        return {}
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.isfinite(scores[top])]
    rids_out = rids[keep][top]
    return {
        int(rid): (float(scores[i]), float(lex[i]), float(cos[i]))
        for rid, i in zip(rids_out, top, strict=True)
    }


@dataclass(frozen=True)
class Window:
    """Rows read around the candidates of a search from the database's own vector index
    (PostgreSQL): rid order, each with the rid of the persona's row just before it."""

    rids: npt.NDArray[np.int64]
    previous: npt.NDArray[np.int64]  # -1: none, or not read
    occurred: npt.NDArray[np.float64]
    vectors: npt.NDArray[np.float32]


def rank_window(
    window: Window,
    core: set[int],
    lexical: dict[int, float],
    query_vector: npt.NDArray[np.float32],
    dates: list[Interval],
    allowed: set[int] | None,
    k: int,
    params: RankingParams = DEFAULT_RANKING,
) -> tuple[Ranked, set[int]]:
    """`rank_shelf` for rows the database found (its nearest in meaning, the lexical hits,
    the rows nearest a named date: `core`) and read with their neighbours up to twice
    the neighbour bonus's reach: positions are made up so that rows next to each other
    in the persona are consecutive and any others far apart, then `rank_rows` ranks."""
    n = len(window.rids)
    if n == 0:
        return {}, set()
    reach = len(params.neighbour_weights)
    gap = 2 * reach + 2
    adjacent = np.zeros(n, dtype=bool)
    adjacent[1:] = window.previous[1:] == window.rids[:-1]
    steps = np.where(adjacent, 1, gap)
    steps[0] = 0
    data = np.cumsum(steps).astype(np.int64)
    present = set(window.rids.tolist())
    on_shelf = {rid for rid in lexical if rid in present}
    core_pos = data[np.isin(window.rids, np.asarray(sorted(core | on_shelf), dtype=np.int64))]
    scored = np.intersect1d(_around(core_pos, reach, int(data[-1]) + 1), data)
    lex = np.array([lexical.get(int(r), 0.0) for r in window.rids], dtype=np.float64)
    cosine = (window.vectors @ query_vector).astype(np.float32)
    mask = None
    if allowed is not None:
        mask = np.isin(window.rids, np.asarray(sorted(allowed), dtype=np.int64))
    ranked = rank_rows(
        data, scored, window.rids, lex, cosine, window.occurred, mask, dates, k, params
    )
    return ranked, on_shelf
