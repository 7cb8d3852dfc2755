"""Per-caller request rate: one token bucket per key (a token, or a connection when auth
is off). A bucket holds RATE_LIMIT_PER_MINUTE requests and refills continuously, so a
burst up to the limit passes and a sustained flood is held to the rate."""

from __future__ import annotations

from collections.abc import Callable

MAX_BUCKETS = 10_000  # past this, full buckets (idle callers) are forgotten


class RateLimiter:
    def __init__(self, per_minute: int, now: Callable[[], float]) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._now = now
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str) -> float | None:
        """Spend one request for `key`: None if allowed, else seconds until one is."""
        if self.per_minute <= 0:
            return None
        now = self._now()
        tokens, at = self._buckets.get(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - at) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self._rate
        if len(self._buckets) >= MAX_BUCKETS and key not in self._buckets:
            self._forget_full(now)
        self._buckets[key] = (tokens - 1.0, now)
        return None

    def _forget_full(self, now: float) -> None:
        full = float(self.per_minute)
        self._buckets = {
            k: (t, at)
            for k, (t, at) in self._buckets.items()
            if min(full, t + (now - at) * self._rate) < full
        }
