"""The seeded market model: one venue's order book evolving one event at a time, with no clock and no I/O.

A venue's book is stepped, never timed, so the same seed always gives the same sequence of events whatever the
rate or the machine: determinism tests step the model directly, and the simulator only decides *when* to step.
Each venue's quotes follow its own mean-reverting target around a common centre; because both venues sit on
the same tick grid close to the same centre, most price levels are shared (equal-price ties happen), and the
two independent targets drift apart often enough for the venues to cross each other now and then. Inside one
venue the book is never crossed.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from math import ceil, floor

from sortedcontainers import SortedList

from orderbook.book import PriceLevel
from orderbook.prices import SCALE

TICK = SCALE // 100_000
"""0.00001, the ETHBTC price tick, as a scaled integer."""
LOT = SCALE // 100_000_000
"""0.00000001, the smallest amount step (8 decimals)."""
CENTRE_TICKS = 5_000
"""0.05 in ticks: an ETHBTC-like price."""


@dataclass(frozen=True, slots=True)
class BookChange:
    """One exchange event: the new absolute amount of each changed level (0 removes it), scaled integers."""

    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)


@dataclass(frozen=True, slots=True)
class ModelParams:
    """Shape of the random walk. Defaults give a 2-4 tick spread and a cross-venue cross a few % of the time.

    The walk is in ticks and lots; ``tick`` (scaled) says what a tick is worth, and amounts are drawn times
    ``10 ** amount_exponent`` (:mod:`orderbook.simulator.reference` sets both from the symbol's price)."""

    levels: int = 300
    centre_ticks: int = CENTRE_TICKS
    target_sigma: float = 0.16
    target_reversion: float = 0.01
    half_spread: float = 1.0
    max_ops: int = 4
    tick: int = TICK
    amount_exponent: int = 0

    @classmethod
    def with_levels(cls, levels: int, centre_ticks: int = CENTRE_TICKS) -> ModelParams:
        """``levels`` per side, centred high enough that the deepest bid stays above zero.

        A side spans about 1.45 ticks per level (gaps of one or two ticks), so the default centre (5,000 ticks)
        holds some 3,400 levels; deeper books move the centre up to twice the depth.
        """
        return cls(levels=levels, centre_ticks=max(centre_ticks, 2 * levels))


def symbol_centre_ticks(symbol: str) -> int:
    """A price centre of its own for a symbol other than the default: 1 to 20 times the default's, picked by a
    checksum of the name (the same on every run and on both venues, so the venues of one symbol still meet)."""
    return CENTRE_TICKS * (1 + zlib.crc32(symbol.upper().encode()) % 20)


class _Side:
    """One side's levels in ticks; ``sign`` = +1 for bids (best = highest), -1 for asks (best = lowest)."""

    __slots__ = ("sign", "ticks", "amounts")

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.ticks: SortedList = SortedList()
        self.amounts: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.ticks)

    def best(self) -> int:
        return self.ticks[-1] if self.sign > 0 else self.ticks[0]

    def worst(self) -> int:
        return self.ticks[0] if self.sign > 0 else self.ticks[-1]

    def at_rank(self, rank: int) -> int:
        """The tick of the ``rank``-th best level (0 = best)."""
        return self.ticks[-1 - rank] if self.sign > 0 else self.ticks[rank]

    def set(self, tick: int, amount: int, changes: dict[int, int]) -> None:
        if amount:
            if tick not in self.amounts:
                self.ticks.add(tick)
            self.amounts[tick] = amount
        elif tick in self.amounts:
            self.ticks.remove(tick)
            del self.amounts[tick]
        changes[tick] = amount


class VenueModel:
    """One venue's book and quote target, driven by its own ``random.Random``."""

    def __init__(self, seed: int | str, params: ModelParams | None = None) -> None:
        self.params = params or ModelParams()
        self.tick = self.params.tick
        """A tick's worth, scaled: prices are whole ticks."""
        self._rng = random.Random(seed)
        self._target = float(self.params.centre_ticks)
        self._bids = _Side(+1)
        self._asks = _Side(-1)
        self._build_initial_book()

    # -- reading -----------------------------------------------------------------------------------------

    def levels(self) -> tuple[list[PriceLevel], list[PriceLevel]]:
        """The whole book, best first, as scaled (price, amount) pairs."""
        return self._export(self._bids), self._export(self._asks)

    def best_bid(self) -> int:
        return self._bids.best() * self.tick

    def best_ask(self) -> int:
        return self._asks.best() * self.tick

    # -- stepping ----------------------------------------------------------------------------------------

    def step(self) -> BookChange:
        """Advance one event: 1..max_ops level operations, each price reported once with its final amount."""
        rng = self._rng
        p = self.params
        self._target += rng.gauss(0.0, p.target_sigma) - p.target_reversion * (self._target - p.centre_ticks)
        bid_changes: dict[int, int] = {}
        ask_changes: dict[int, int] = {}
        for _ in range(1 + min(int(rng.expovariate(1.2)), p.max_ops - 1)):
            if rng.random() < 0.3 and self._follow_target(bid_changes, ask_changes):
                continue
            if rng.random() < 0.5:
                self._random_op(self._bids, self._asks, bid_changes)
            else:
                self._random_op(self._asks, self._bids, ask_changes)
        self._keep_depth(self._bids, bid_changes)
        self._keep_depth(self._asks, ask_changes)
        return self._change(bid_changes, ask_changes)

    def mark_best_bid(self, lots: int) -> BookChange:
        """Set the best bid's amount to ``lots`` (a latency probe's marker, see :mod:`orderbook.simulator.probe`).

        Draws nothing from the random stream, so a run with probes differs from one without only at the probes.
        """
        changes: dict[int, int] = {}
        self._bids.set(self._bids.best(), lots, changes)
        return self._change(changes, {})

    def cross_above(self, price: int) -> BookChange:
        """Bid one tick above ``price`` (another venue's best ask) now, clearing this venue's asks in the way."""
        return self._cross(self._bids, self._asks, price // self.tick + 1)

    def cross_below(self, price: int) -> BookChange:
        """Offer one tick below ``price`` (another venue's best bid) now, clearing this venue's bids in the way."""
        return self._cross(self._asks, self._bids, -(-price // self.tick) - 1)

    def set_level(self, bid: bool, price: int, amount: int) -> BookChange:
        """Set the level at ``price`` (scaled) on one side to ``amount`` (scaled, a whole number of lots; 0
        removes it), for a fault that changes the book outside the random walk. Draws nothing at random."""
        if price % self.tick or amount % LOT:
            raise ValueError(f"price {price} is not on the tick grid or amount {amount} not in lots")
        changes: dict[int, int] = {}
        (self._bids if bid else self._asks).set(price // self.tick, amount // LOT, changes)
        return self._change(changes, {}) if bid else self._change({}, changes)

    def sweep(self, bid: bool, levels: int) -> BookChange:
        """Remove the best ``levels`` levels of one side at once, as a large market order does.

        Only removals: the depth is restored by the following steps (``_keep_depth`` refills inside the book), and
        the quote target is left where it was, so the best price walks back a tick at a time as the market
        refills the hole. At least one level stays, so the side is never empty. Draws nothing at random.
        """
        side = self._bids if bid else self._asks
        if not 1 <= levels < len(side):
            raise ValueError(f"levels must be in [1, {len(side) - 1}], got {levels}")
        changes: dict[int, int] = {}
        for _ in range(levels):
            side.set(side.best(), 0, changes)
        return self._change(changes, {}) if bid else self._change({}, changes)

    # -- internals ---------------------------------------------------------------------------------------

    def _build_initial_book(self) -> None:
        rng = self._rng
        centre = self.params.centre_ticks
        unused: dict[int, int] = {}
        for side, start in ((self._bids, centre - 1), (self._asks, centre + 1)):
            tick = start
            while len(side) < self.params.levels:
                side.set(tick, self._amount(), unused)
                tick -= side.sign * (1 + (rng.random() < 0.45))

    def _amount(self) -> int:
        """A positive amount in lots, usually small, sometimes large (log-uniform 0.001 .. 50, times
        ``10 ** amount_exponent``)."""
        return max(1, round(10 ** (self._rng.uniform(5.0, 9.7) + self.params.amount_exponent)))

    def _follow_target(self, bid_changes: dict[int, int], ask_changes: dict[int, int]) -> bool:
        """Move one side's best level a tick towards the target quote; False when both are on target."""
        rng = self._rng
        want_bid = floor(self._target - self.params.half_spread)
        want_ask = ceil(self._target + self.params.half_spread)
        bid, ask = self._bids.best(), self._asks.best()
        moves = []
        if bid > want_bid and len(self._bids) > 1:
            moves.append((self._bids, bid, 0, bid_changes))
        elif bid < want_bid and bid + 1 < ask:
            moves.append((self._bids, bid + 1, self._amount(), bid_changes))
        if ask < want_ask and len(self._asks) > 1:
            moves.append((self._asks, ask, 0, ask_changes))
        elif ask > want_ask and ask - 1 > bid:
            moves.append((self._asks, ask - 1, self._amount(), ask_changes))
        if not moves:
            return False
        side, tick, amount, changes = moves[rng.randrange(len(moves))]
        side.set(tick, amount, changes)
        return True

    def _random_op(self, side: _Side, other: _Side, changes: dict[int, int]) -> None:
        """Change, remove or add a level, mostly near the top of the book."""
        rng = self._rng
        rank = min(int(rng.expovariate(1 / 25)), len(side) - 1)
        roll = rng.random()
        if roll < 0.55:
            side.set(side.at_rank(rank), self._amount(), changes)
        elif roll < 0.75 and len(side) > 1:
            side.set(side.at_rank(rank), 0, changes)
        else:
            tick = side.best() - side.sign * (1 + int(rng.expovariate(1 / 30)))
            side.set(tick, self._amount(), changes)

    def _keep_depth(self, side: _Side, changes: dict[int, int]) -> None:
        """Refill inside the book (so the far end does not drift away) and trim the far end."""
        levels = self.params.levels
        rng = self._rng
        while len(side) < levels:
            span = abs(side.best() - side.worst())
            tick = side.worst() - side.sign
            for _ in range(3):
                candidate = side.best() - side.sign * rng.randint(1, max(span, 1))
                if candidate not in side.amounts:
                    tick = candidate
                    break
            side.set(tick, self._amount(), changes)
        while len(side) > levels + 10:
            side.set(side.worst(), 0, changes)

    def _cross(self, side: _Side, other: _Side, tick: int) -> BookChange:
        own: dict[int, int] = {}
        theirs: dict[int, int] = {}
        while len(other) and other.sign * (tick - other.best()) <= 0:
            other.set(other.best(), 0, theirs)
        if not len(other):
            other.set(tick + side.sign, self._amount(), theirs)
        side.set(tick, self._amount(), own)
        # Hold the new quote for a while: the target reverts to the centre over ~1/reversion events.
        self._target = tick - side.sign * self.params.half_spread
        self._keep_depth(side, own)
        self._keep_depth(other, theirs)
        if side is self._bids:
            return self._change(own, theirs)
        return self._change(theirs, own)

    def _change(self, bid_changes: dict[int, int], ask_changes: dict[int, int]) -> BookChange:
        """Levels best first, as the exchanges write them."""
        size = self.tick
        return BookChange(
            tuple((tick * size, bid_changes[tick] * LOT) for tick in sorted(bid_changes, reverse=True)),
            tuple((tick * size, ask_changes[tick] * LOT) for tick in sorted(ask_changes)),
        )

    def _export(self, side: _Side) -> list[PriceLevel]:
        size = self.tick
        ticks = reversed(side.ticks) if side.sign > 0 else iter(side.ticks)
        return [(tick * size, side.amounts[tick] * LOT) for tick in ticks]
