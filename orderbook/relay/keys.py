"""One deployment's Redis keys, the lease written in one of them, and the scripts that act on them atomically.

Every book node and edge of a deployment uses the same keys, ``<prefix>:leader`` and the others below, where the
prefix is ``--relay-prefix`` (``orderbook`` by default), in the same database (the ``/DB`` of their URLs). A second
deployment on the same Redis takes another prefix (or another database); a book node refuses to join a key space
whose leader serves another catalogue (:mod:`orderbook.relay.node`). Nothing here grows with time: one lease, one
epoch counter, one hash entry per symbol, one catalogue value, one entry per live book node, and a Pub/Sub channel,
which keeps nothing.

A deployment's symbols may be split over shards (``--shard``), each with its own book nodes and leader: each shard
has every key below to itself, ``<prefix>:shard:<name>:leader`` and so on, except the default shard, ``main``,
whose keys are the ones above (a deployment of one shard is what it was before shards). One more key, shared by
the shards, names them (:attr:`Keys.shards`): ``shard -> "<expiry in ms> <registered in ms>"``, written by each
book node at every report, so that edges find every shard and a node sees the shards beside its own.

* ``lease``: ``"<epoch> <node>"`` while a leader holds it, set only if absent, with an expiry (``PX``).
* ``epoch``: the last epoch handed out; a new lease takes the next one, and never one at or below an epoch its
  taker has already seen, so epochs keep growing when Redis restarts empty.
* ``latest``: symbol -> the leader's latest envelope for it (a new or reconnecting edge starts from these).
* ``catalog``: the leader's latest heartbeat envelope, expiring :data:`~orderbook.relay.timing.CATALOG_TTL` after
  it was written: present means a leader published within that time.
* ``nodes``: node -> ``"<symbols in step> <expiry in ms> <catalogue fingerprint> <highest epoch seen>"``: how
  ready each book node is, for the handover rule, which catalogue it serves, so that a node of another deployment
  is seen, and the newest epoch it has seen, so that the nodes learn it from each other (a node that missed an
  epoch, and a Redis that lost it, do not hand it out again); every report drops the entries that expired.
* ``channel``: every envelope, as it is published.

Every write of a leader goes through :data:`PUBLISH`, which checks the lease first: a leader that lost its lease
(it hung, or lost Redis, and another took over) cannot write a byte, whatever it still believes.

What another process left here is input, read like a venue's frame: a lease that is not ``"<epoch> <node>"``
(:func:`read_lease`) is held by someone unknown until it expires; :data:`ACQUIRE` refuses an epoch counter that
is not an epoch; no epoch passes :data:`MAX_EPOCH`; and no script hands a reader more than a bounded number of
bytes, whatever was stored.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

MAX_EPOCH = 2**53
"""No epoch, and no sequence number (:mod:`~orderbook.relay.envelope`), goes above this: the scripts compute with
epochs in Lua, whose numbers are doubles, which hold every integer up to here exactly and none much beyond."""
MAX_LEASE = 512
"""Bytes a lease value may have: ``"<epoch> <node>"`` is under 300."""
NODE = re.compile(r"[\x21-\x7e]{1,255}")
"""A book node's name (host, pid and a random part): printable, without the space that ends the lease's epoch."""
PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DEFAULT_PREFIX = "orderbook"
SHARD = PREFIX
"""A shard's name (``--shard``): as a prefix's."""
DEFAULT_SHARD = "main"
MAX_SHARDS = 64
"""Shards a deployment may have: a report returns at most this many, and an edge follows at most this many."""
SHARD_TTL_MS = 60_000
"""A shard's entry in :attr:`Keys.shards` outlives its book nodes' last report by this much (unless the last of
them stops cleanly, which removes it at once): an edge shows the symbols of a shard whose nodes all died, with no
venue in step, for this long."""
MAX_FOREIGN = 16
"""Nodes of another catalogue one report names at most (they are counted, and a few named in the log)."""


@dataclass(frozen=True, slots=True)
class Keys:
    """The key names of the shard ``shard`` of the deployment whose keys start with ``prefix``."""

    prefix: str = DEFAULT_PREFIX
    shard: str = DEFAULT_SHARD

    def __post_init__(self) -> None:
        for text in (self.prefix, self.shard):
            if not PREFIX.fullmatch(text):
                raise ValueError(f"expected 1 to 64 letters, digits, '-', '_' or '.', got {text[:80]!r}")

    @property
    def _base(self) -> str:
        return self.prefix if self.shard == DEFAULT_SHARD else f"{self.prefix}:shard:{self.shard}"

    def of_shard(self, shard: str) -> Keys:
        """The keys of another shard of the same deployment."""
        return Keys(self.prefix, shard)

    @property
    def lease(self) -> str:
        return f"{self._base}:leader"

    @property
    def epoch(self) -> str:
        return f"{self._base}:epoch"

    @property
    def latest(self) -> str:
        return f"{self._base}:latest"

    @property
    def catalog(self) -> str:
        return f"{self._base}:catalog"

    @property
    def nodes(self) -> str:
        return f"{self._base}:nodes"

    @property
    def channel(self) -> str:
        return f"{self._base}:summaries"

    @property
    def shards(self) -> str:
        """The deployment's shards (every shard's own keys name the same)."""
        return f"{self.prefix}:shards"


DEFAULT_KEYS = Keys()
"""The keys of a deployment that keeps the default prefix."""


class BadLease(ValueError):
    """A lease value that is not ``"<epoch> <node>"`` with an epoch from 1 to :data:`MAX_EPOCH`."""


@dataclass(frozen=True, slots=True)
class Lease:
    epoch: int
    node: str

    @property
    def token(self) -> str:
        """The lease's value, as its holder wrote it and as every fenced write compares it."""
        return f"{self.epoch} {self.node}"


def read_lease(value: bytes) -> Lease:
    """The lease in ``value``; raises :class:`BadLease` if no book node could have written it."""
    if len(value) > MAX_LEASE:
        raise BadLease(f"{len(value)} bytes, more than the {MAX_LEASE} a lease has")
    epoch, _, node = value.partition(b" ")
    if not (epoch.isdigit() and len(epoch) <= len(str(MAX_EPOCH)) and 1 <= int(epoch) <= MAX_EPOCH):
        raise BadLease(f"not '<epoch> <node>' with an epoch from 1 to 2^53: {value[:60]!r}")
    name = node.decode("ascii", errors="replace")
    if not NODE.fullmatch(name):
        raise BadLease(f"not '<epoch> <node>' with a node name: {value[:60]!r}")
    return Lease(int(epoch), name)


def fingerprint(symbols: Sequence[str], depth: int) -> str:
    """A catalogue in a few hex digits: the nodes of one deployment share it (the symbols' order counts: the first
    is the default)."""
    return hashlib.sha256(f"{depth} {','.join(symbols)}".encode()).hexdigest()[:16]


STORED_TTL_MS = 60_000
"""The latest hash outlives its last write by this much: a deployment that stops leaves nothing behind."""

ACQUIRE = """
-- KEYS: lease, epoch. ARGV: node, lease ms, the highest epoch the node has seen, the highest epoch there may be.
-- Returns the new epoch; 0 if the lease is held (by anyone: a value that does not parse too, until it expires);
-- -1, taking nothing, if the counter is not an epoch or the next epoch would pass the highest.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local counter = redis.call('GET', KEYS[2]) or '0'
if #counter > 16 or not string.match(counter, '^%d+$') then return -1 end
local last = math.max(tonumber(counter), tonumber(ARGV[3]))
if last >= tonumber(ARGV[4]) then return -1 end  -- compared before adding: past 2^53, last + 1 is last again
local epoch = last + 1
redis.call('SET', KEYS[2], string.format('%d', epoch))
redis.call('SET', KEYS[1], string.format('%d', epoch) .. ' ' .. ARGV[1], 'PX', ARGV[2])
return epoch
"""

RENEW = """
-- KEYS: lease. ARGV: token, lease ms. 1 if the lease is still the token's (and now runs from here), else 0.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

RELEASE = """
-- KEYS: lease. ARGV: token. Deletes the lease if it is still the token's.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""

PUBLISH = """
-- KEYS: lease, latest, catalog. ARGV: token, channel, stored ms, catalog ms, replace ("1": the latest hash is
-- replaced, a new leader's first write), then pairs of (symbol, envelope), the symbol "" for a heartbeat.
-- Returns 0 without writing anything if the lease is not the token's.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[5] == '1' then redis.call('DEL', KEYS[2]) end
for i = 6, #ARGV, 2 do
    if ARGV[i] == '' then
        redis.call('SET', KEYS[3], ARGV[i + 1], 'PX', ARGV[4])
    else
        redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
    end
    redis.call('PUBLISH', ARGV[2], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"""

REPORT = """
-- KEYS: nodes, lease, shards. ARGV: node, its symbols in step, entry ms, its catalogue's fingerprint, the most bytes
-- of the lease to return, the most names of other catalogues' nodes to return, its shard, the shard entry's ms, the
-- most shards to return, the highest epoch it has seen, the highest epoch there may be. Records the node's
-- readiness, its shard and its epoch, drops expired entries, and returns how many other live nodes of the same
-- catalogue have a symbol in step, the lease's value (false if there is none), live nodes of another catalogue, the
-- live shards as pairs of (name, registered ms), its own shard's first, and the highest epoch a live node of the
-- same catalogue has seen (none above the highest there may be).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local registered = now
local mine = redis.call('HGET', KEYS[3], ARGV[7])
if mine then
    local expiry, since = string.match(mine, '^(%d+) (%d+)$')
    if since and tonumber(expiry) >= now then registered = tonumber(since) end
end
local since = string.format('%d', registered)
redis.call('HSET', KEYS[3], ARGV[7], string.format('%d', now + tonumber(ARGV[8])) .. ' ' .. since)
local shards = {ARGV[7], since}
local entries = redis.call('HGETALL', KEYS[3])
for i = 1, #entries, 2 do
    local expiry, since = string.match(entries[i + 1], '^(%d+) (%d+)$')
    if expiry == nil or tonumber(expiry) < now then
        redis.call('HDEL', KEYS[3], entries[i])
    elseif entries[i] ~= ARGV[7] and #shards < 2 * tonumber(ARGV[9]) then
        shards[#shards + 1] = entries[i]
        shards[#shards + 1] = since
    end
end
redis.call('PEXPIRE', KEYS[3], ARGV[8])
local entry = string.format('%d', now + tonumber(ARGV[3])) .. ' ' .. ARGV[4] .. ' ' .. ARGV[10]
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. entry)
local others, foreign, highest = 0, {}, 0
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
    local ready, expiry, catalogue, seen = string.match(entries[i + 1], '^(%d+) (%d+) (%x+) ?(%d*)$')
    if expiry == nil or tonumber(expiry) < now then
        redis.call('HDEL', KEYS[1], entries[i])
    elseif catalogue ~= ARGV[4] then
        if #foreign < tonumber(ARGV[6]) then foreign[#foreign + 1] = entries[i] end
    else
        if entries[i] ~= ARGV[1] and tonumber(ready) > 0 then others = others + 1 end
        if #seen > 0 and #seen <= 16 and tonumber(seen) <= tonumber(ARGV[11]) then
            highest = math.max(highest, tonumber(seen))
        end
    end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local lease = false
if redis.call('EXISTS', KEYS[2]) == 1 then lease = redis.call('GETRANGE', KEYS[2], 0, ARGV[5]) end
return {others, lease, foreign, shards, string.format('%d', highest)}
"""

LIST_SHARDS = """
-- KEYS: shards. ARGV: the most shards to return. The live shards' names (whatever they are: the reader checks them).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local names = {}
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
    local expiry = string.match(entries[i + 1], '^(%d+) %d+$')
    if expiry ~= nil and tonumber(expiry) >= now and #names < tonumber(ARGV[1]) then names[#names + 1] = entries[i] end
end
return names
"""

LEAVE = """
-- KEYS: nodes, shards. ARGV: node, its shard. A node that stops cleanly: drops its entry, and its shard's if no
-- other live node of the shard is left (an edge then stops showing the shard's symbols once it has been silent).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('HDEL', KEYS[1], ARGV[1])
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
    local expiry = string.match(entries[i + 1], '^%d+ (%d+) %x+')
    if expiry ~= nil and tonumber(expiry) >= now then return 0 end
end
redis.call('HDEL', KEYS[2], ARGV[2])
return 1
"""

READ_LATEST = """
-- KEYS: latest. ARGV: the most bytes an envelope has, then symbols. Each symbol's latest envelope: false if there
-- is none, or its size if it is larger than an envelope may be (so that a stuffed value is never copied out).
local found = {}
for i = 2, #ARGV do
    local size = redis.call('HSTRLEN', KEYS[1], ARGV[i])
    if size == 0 then
        found[i - 1] = false
    elseif size > tonumber(ARGV[1]) then
        found[i - 1] = size
    else
        found[i - 1] = redis.call('HGET', KEYS[1], ARGV[i])
    end
end
return found
"""
