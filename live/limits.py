"""Token buckets on the server clock (so tests can drive time with ``ManualClock``).

Used for every rate limit: room-channel messages per socket, chat and likes per viewer
and per room.
"""

from __future__ import annotations


class Bucket:
    """``rate`` tokens a second, at most ``burst`` saved up."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: float, now_ms: int) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._stamp = now_ms

    def _refill(self, now_ms: int) -> None:
        if now_ms > self._stamp:
            elapsed = (now_ms - self._stamp) / 1000
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
            self._stamp = now_ms

    def take(self, now_ms: int, n: float = 1.0) -> bool:
        self._refill(now_ms)
        if self._tokens < n:
            return False
        self._tokens -= n
        return True

    def retry_after_ms(self, now_ms: int, n: float = 1.0) -> int:
        self._refill(now_ms)
        missing = max(0.0, n - self._tokens)
        return int(missing / self._rate * 1000) + 1 if missing else 0

    def full(self, now_ms: int) -> bool:
        self._refill(now_ms)
        return self._tokens >= self._burst


class KeyedBuckets:
    """One bucket per key (e.g. per user), created on first use; full ones are pruned."""

    __slots__ = ("_buckets", "_burst", "_rate")

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        #: one per key used since its bucket was last full; ``prune`` drops the full
        #: ones (the owner calls it periodically)
        self._buckets: dict[int, Bucket] = {}

    def get(self, key: int, now_ms: int) -> Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(self._rate, self._burst, now_ms)
        return bucket

    def __len__(self) -> int:
        return len(self._buckets)

    def prune(self, now_ms: int) -> None:
        """Forget buckets that are full again: they behave exactly like new ones."""
        for key in [k for k, b in self._buckets.items() if b.full(now_ms)]:
            del self._buckets[key]
