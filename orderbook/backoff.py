"""Reconnect delays: exponential, with full jitter so that restarts never synchronise, and a cap."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None) -> None:
        if not 0 < base <= cap:
            raise ValueError("need 0 < base <= cap")
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or random.Random()

    @property
    def ceiling(self) -> float:
        """The most the next delay can be: the base doubled for each attempt so far, up to the cap."""
        return min(self.cap, self.base * 2 ** min(self.attempt, 32))

    def next(self) -> float:
        """The delay before the next attempt: uniform in [base/2, :attr:`ceiling`]."""
        ceiling = self.ceiling
        self.attempt += 1
        return self._rng.uniform(min(self.base / 2, ceiling), ceiling)

    def reset(self) -> None:
        self.attempt = 0
