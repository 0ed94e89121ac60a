"""The relay's figures, for the book node's and the edge's /metrics: plain attributes, exported at scrape time.

Every series has a ``shard`` label (``--shard``): a book node's is its own shard, and an edge has one set of
figures a shard it serves (:func:`merged` makes one family of each name from them)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from orderbook.metrics import LatencyHistogram

HOP_BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

NODE_REJECTIONS = ("bad_lease", "bad_epoch_counter", "other_deployment", "shard_overlap", "bad_shard")
EDGE_REJECTIONS = ("malformed", "bad_mac", "out_of_range", "sequence_jump", "bad_catalogue", "bad_summary",
                   "not_lease_holder")
REJECTED_HELP = (
    "Values read from Redis that no book node of this deployment could have written, refused and ignored, by "
    "reason: bad_lease (the lease is not '<epoch> <node>' with an epoch from 1 to 2^53: held by someone unknown "
    "until it expires), bad_epoch_counter (the epoch counter is not an epoch: no lease is taken on it), "
    "other_deployment (a book node serving another catalogue on this key space, seen or refused), shard_overlap "
    "(this node refused to join: another shard's leader serves some of its symbols), bad_shard (the list of shards "
    "names no shard), malformed (not "
    "an envelope), bad_mac (no valid MAC under --relay-key), out_of_range (an epoch or sequence of 0 or above "
    "2^53), sequence_jump (a sequence more than a million past the newest of its epoch), bad_catalogue (a heartbeat's "
    "symbols or depth outside what --symbol and --depth allow), bad_summary (a summary that is not an "
    "orderbook.Summary, or deeper than the catalogue), not_lease_holder (a catalogue change from other than the "
    "lease's holder)")


def _gauge(name: str, documentation: str, shard: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["shard"])
    family.add_metric([shard], value)
    return family


def _counter(name: str, documentation: str, shard: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=["shard"])
    family.add_metric([shard], value)
    return family


def _by(name: str, documentation: str, shard: str, label: str, counts: Counter[str],
        known: Iterable[str]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=["shard", label])
    for key in dict.fromkeys((*known, *counts)):
        family.add_metric([shard, key], counts[key])
    return family


def shard_list_families(rejected: Counter[str]) -> list[Metric]:
    """An edge's refusals of what the list of shards names, under no shard (``shard=""``)."""
    return [_by("orderbook_relay_rejected", REJECTED_HELP, "", "reason", rejected, ("bad_shard",))]


def merged(groups: Iterable[Iterable[Metric]]) -> list[Metric]:
    """One family of each name, with the samples of every group's (each group a shard's figures)."""
    families: dict[str, Metric] = {}
    for group in groups:
        for family in group:
            if family.name in families:
                families[family.name].samples.extend(family.samples)
            else:
                families[family.name] = family
    return list(families.values())


@dataclass(slots=True)
class NodeStats:
    """A book node's side of the relay (``--publish``)."""

    redis_connected: bool = False
    leader: bool = False
    epoch: int = 0
    """The epoch this node leads in, or else the newest it has seen."""
    renewals: int = 0
    takeovers: int = 0
    handovers: int = 0
    published: Counter[str] = field(default_factory=Counter)
    redis_errors: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def families(self, shard: str) -> list[Metric]:
        return [
            _gauge("orderbook_relay_redis_connected", "1 while Redis answers this process", shard,
                   self.redis_connected),
            _gauge("orderbook_relay_leader", "1 while this book node holds its shard's lease and publishes", shard,
                   self.leader),
            _gauge("orderbook_relay_epoch", "The leader's epoch: the one this node leads in, or the newest it saw",
                   shard, self.epoch),
            _counter("orderbook_relay_lease_renewals", "Lease renewals by this book node", shard, self.renewals),
            _counter("orderbook_relay_takeovers", "Times this book node took the lease and became the leader",
                     shard, self.takeovers),
            _counter("orderbook_relay_handovers", "Times this book node, its venues all out of step, gave the lease "
                     "up to an in-step standby", shard, self.handovers),
            _by("orderbook_relay_published", "Envelopes published to Redis, by kind", shard, "kind", self.published,
                ("update", "heartbeat")),
            _counter("orderbook_relay_redis_errors", "Redis requests that failed (unreachable, timed out)", shard,
                     self.redis_errors),
            _by("orderbook_relay_rejected", REJECTED_HELP, shard, "reason", self.rejected, NODE_REJECTIONS),
        ]


@dataclass(slots=True)
class EdgeStats:
    """An edge's side of the relay (``--source``)."""

    redis_connected: bool = False
    serving: bool = False
    epoch: int = 0
    received: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    leader_changes: int = 0
    sources_lost: int = 0
    redis_errors: int = 0
    symbols: int = 0
    last_message_at: float | None = None
    """``time.monotonic()`` of the last envelope taken from the leader."""
    hop: LatencyHistogram = field(default_factory=lambda: LatencyHistogram(HOP_BUCKETS))

    def families(self, shard: str) -> list[Metric]:
        age = GaugeMetricFamily("orderbook_relay_last_message_age_seconds",
                                "Seconds since the edge last heard from the leader (an update or a heartbeat)",
                                labels=["shard"])
        if self.last_message_at is not None:
            age.add_metric([shard], time.monotonic() - self.last_message_at)
        hop = HistogramMetricFamily("orderbook_relay_hop_seconds", "Published by the leader to received by the edge "
                                    "(wall clocks: across hosts, as good as their synchronisation)", labels=["shard"])
        hop.add_metric([shard], self.hop.cumulative_buckets(), self.hop.total)
        return [
            _gauge("orderbook_relay_redis_connected", "1 while Redis answers this process", shard,
                   self.redis_connected),
            _gauge("orderbook_relay_source_up", "1 while the edge serves the shard: Redis answers and its leader was "
                   "heard within the source timeout", shard, self.serving),
            _gauge("orderbook_relay_epoch", "The epoch of the leader the edge follows (or last followed)", shard,
                   self.epoch),
            _gauge("orderbook_relay_symbols", "Symbols of the shard the edge serves (its leader's catalogue)", shard,
                   self.symbols),
            _by("orderbook_relay_received", "Envelopes received on the channel, by kind (not those read from what "
                "Redis stores, on connecting)", shard, "kind", self.received,
                ("update", "heartbeat")),
            _by("orderbook_relay_dropped", "Well-formed envelopes with nothing new, dropped in the ordinary course, "
                "by reason: old_epoch (a deposed leader's), old_sequence (older than one already applied), "
                "unknown_symbol (before the catalogue naming its symbol)", shard, "reason", self.dropped,
                ("old_epoch", "old_sequence", "unknown_symbol")),
            _by("orderbook_relay_rejected", REJECTED_HELP, shard, "reason", self.rejected, EDGE_REJECTIONS),
            _counter("orderbook_relay_leader_changes", "Times the edge followed a new leader (a newer epoch)", shard,
                     self.leader_changes),
            _counter("orderbook_relay_sources_lost", "Times the edge lost its source for longer than the source "
                     "timeout and ended its streams", shard, self.sources_lost),
            _counter("orderbook_relay_redis_errors", "Redis requests that failed (unreachable, timed out)", shard,
                     self.redis_errors),
            age,
            hop,
        ]
