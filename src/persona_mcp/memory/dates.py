"""Calendar dates named in a query ("on 7 July, 2023", "in May 2022", "last summer 2021",
"in June"), and how close a memory's `occurred_at` lies to them."""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, date, datetime, timedelta

import numpy as np
import numpy.typing as npt

Interval = tuple[date, date, bool]  # start, end (exclusive), any year

_MONTH_NAMES = (
    "january february march april may june july august september october november december"
)
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES.split(), 1)}
_MONTHS.update({k[:3]: v for k, v in list(_MONTHS.items())})
_MONTHS["sept"] = 9
_SEASONS = {"spring": (3, 3), "summer": (6, 3), "autumn": (9, 3), "fall": (9, 3), "winter": (12, 3)}
_M = (
    r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_D = r"(\d{1,2})(?:st|nd|rd|th)?"
_Y = r"((?:19|20)\d\d)"
_PREPOSITION = r"(?:in|during|on|since|of|early|late|mid|before|after|until|by|last|next|this)"
# Most specific first; each match is blanked out before the next pattern runs.
_PATTERNS = [
    ("ymd", re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")),
    ("dmy", re.compile(rf"\b{_D}\s+(?:of\s+)?{_M}\.?,?\s*{_Y}\b", re.I)),
    ("mdy", re.compile(rf"\b{_M}\.?\s+{_D},?\s*{_Y}\b", re.I)),
    ("sy", re.compile(rf"\b(spring|summer|autumn|fall|winter)\s+(?:of\s+)?{_Y}\b", re.I)),
    ("my", re.compile(rf"\b{_M}\.?,?\s+(?:of\s+)?{_Y}\b", re.I)),
    ("dm", re.compile(rf"\b{_D}\s+(?:of\s+)?{_M}\b", re.I)),
    (
        "md",
        re.compile(rf"\b{_M}\.?\s+{_D}\b(?!\s*(?:am|pm|%|years?|days?|weeks?|months?))", re.I),
    ),
    ("m", re.compile(rf"\b{_PREPOSITION}\s+{_M}\b(?!\s+\d)", re.I)),
    ("y", re.compile(rf"\b(?:in|of|during|since|year|before|after|by)\s+{_Y}\b", re.I)),
]


def _month(name: str) -> int:
    name = name.lower().rstrip(".")
    return _MONTHS.get(name) or _MONTHS[name[:3]]


def _months(year: int, month: int, count: int = 1) -> tuple[date, date]:
    end_month = month - 1 + count
    return date(year, month, 1), date(year + end_month // 12, end_month % 12 + 1, 1)


def _day(d: date) -> tuple[date, date]:
    return d, d + timedelta(days=1)


def query_dates(query: str) -> list[Interval]:
    """The calendar intervals a query names; empty when it names none."""
    found: list[Interval] = []
    text = query
    for kind, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            g = m.groups()
            try:
                if kind == "ymd":
                    found.append((*_day(date(int(g[0]), int(g[1]), int(g[2]))), False))
                elif kind == "dmy":
                    found.append((*_day(date(int(g[2]), _month(g[1]), int(g[0]))), False))
                elif kind == "mdy":
                    found.append((*_day(date(int(g[2]), _month(g[0]), int(g[1]))), False))
                elif kind == "sy":
                    start, length = _SEASONS[g[0].lower()]
                    found.append((*_months(int(g[1]), start, length), False))
                elif kind == "my":
                    found.append((*_months(int(g[1]), _month(g[0])), False))
                elif kind == "dm":
                    found.append((*_day(date(2000, _month(g[1]), int(g[0]))), True))
                elif kind == "md":
                    found.append((*_day(date(2000, _month(g[0]), int(g[1]))), True))
                elif kind == "m":
                    found.append((*_months(2000, _month(g[0])), True))
                else:
                    found.append((date(int(g[0]), 1, 1), date(int(g[0]) + 1, 1, 1), False))
            except (ValueError, KeyError):
                continue
        text = pattern.sub(lambda m: " " * len(m.group(0)), text)
    return found


def _epoch_days(d: date) -> float:
    return float((d - date(1970, 1, 1)).days)


def proximity(
    intervals: list[Interval], occurred: npt.NDArray[np.float64], tau_days: float = 7.0
) -> npt.NDArray[np.float64]:
    """exp(-days outside the nearest named interval / tau) per memory, in [0, 1]."""
    best = np.zeros(len(occurred))
    if not intervals or not len(occurred):
        return best
    days = occurred / 86400.0
    years: set[int] = set()
    if any(any_year for _, _, any_year in intervals):
        years = {datetime.fromtimestamp(float(s), UTC).year for s in occurred}
    for a, b, any_year in intervals:
        spans: list[tuple[date, date]] = []
        if any_year:  # "in June": that stretch in every year the memories cover (and next to it)
            for y in years:
                for dy in (-1, 0, 1):
                    with contextlib.suppress(ValueError):  # 29 February in a common year
                        spans.append(
                            (a.replace(year=y + dy), b.replace(year=b.year - a.year + y + dy))
                        )
        else:
            spans.append((a, b))
        distance = np.full(len(days), np.inf)
        for lo, hi in spans:
            lo_d, hi_d = _epoch_days(lo), _epoch_days(hi)
            distance = np.minimum(distance, np.maximum(0.0, np.maximum(lo_d - days, days - hi_d)))
        best = np.maximum(best, np.exp(-distance / tau_days))
    return best
