"""One deployment's Redis keys, and the scripts that act on them atomically.

Every book node and edge of a deployment uses the same database (the ``/DB`` of their URLs); a second deployment
on the same Redis uses another database. Nothing here grows with time: one lease, one epoch counter, one hash
entry per symbol, one catalogue value, one entry per live book node, and a Pub/Sub channel, which keeps nothing.

* ``LEASE``: ``"<epoch> <node>"`` while a leader holds it, set only if absent, with an expiry (``PX``).
* ``EPOCH``: the last epoch handed out; a new lease takes the next one, and never one at or below an epoch its
  taker has already seen, so epochs keep growing when Redis restarts empty.
* ``LATEST``: symbol -> the leader's latest envelope for it (a new or reconnecting edge starts from these).
* ``CATALOG``: the leader's latest heartbeat envelope, expiring :data:`CATALOG_TTL` after it was written: present
  means a leader published within that time.
* ``NODES``: node -> ``"<symbols in step> <expiry in ms>"``: how ready each book node is, for the handover rule;
  every report drops the entries that expired.
* ``CHANNEL``: every envelope, as it is published.

Every write of a leader goes through :data:`PUBLISH`, which checks the lease first: a leader that lost its lease
(it hung, or lost Redis, and another took over) cannot write a byte, whatever it still believes.
"""

from __future__ import annotations

LEASE = "orderbook:leader"
EPOCH = "orderbook:epoch"
LATEST = "orderbook:latest"
CATALOG = "orderbook:catalog"
NODES = "orderbook:nodes"
CHANNEL = "orderbook:summaries"

STORED_TTL_MS = 60_000
"""The latest hash outlives its last write by this much: a deployment that stops leaves nothing behind."""

ACQUIRE = """
-- KEYS: lease, epoch. ARGV: node, lease ms, the highest epoch the node has seen. Returns the new epoch, or 0.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local epoch = redis.call('INCR', KEYS[2])
local seen = tonumber(ARGV[3])
if epoch <= seen then
    epoch = seen + 1
    redis.call('SET', KEYS[2], string.format('%d', epoch))
end
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
-- KEYS: nodes, lease. ARGV: node, its symbols in step, entry ms. Records the node's readiness, drops expired
-- entries, and returns how many other live nodes have a symbol in step, and the lease's value ('' if none).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. string.format('%d', now + tonumber(ARGV[3])))
local others = 0
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
    local ready, expiry = string.match(entries[i + 1], '^(%d+) (%d+)$')
    if expiry == nil or tonumber(expiry) < now then
        redis.call('HDEL', KEYS[1], entries[i])
    elseif entries[i] ~= ARGV[1] and tonumber(ready) > 0 then
        others = others + 1
    end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {others, redis.call('GET', KEYS[2]) or ''}
"""
