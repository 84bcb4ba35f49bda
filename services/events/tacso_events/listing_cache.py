"""Public listings kept in memory for a moment: a burst of readers costs one query, not many."""

from __future__ import annotations

import threading

from cachetools import TTLCache


class ListingCache:
    """Serialised responses by request path, each kept ``seconds`` (0: no caching).

    Each process has its own: a write in this process clears it at once, a write elsewhere is
    seen here within ``seconds``. The same figure goes to clients as ``Cache-Control: max-age``.
    """

    def __init__(self, seconds: float, maxsize: int = 1024) -> None:
        self.seconds = seconds
        self._cache: TTLCache[str, bytes] | None = (
            TTLCache(maxsize=maxsize, ttl=seconds) if seconds > 0 else None
        )
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        """The cached body for ``key``, if still fresh."""
        if self._cache is None:
            return None
        with self._lock:
            return self._cache.get(key)

    def put(self, key: str, body: bytes) -> None:
        """Keep ``body`` for ``key``."""
        if self._cache is not None:
            with self._lock:
                self._cache[key] = body

    def clear(self) -> None:
        """Forget everything (after a write)."""
        if self._cache is not None:
            with self._lock:
                self._cache.clear()
