"""The relay's clocks, in one place because they bound each other (README, "Beyond one machine").

A leader renews its lease every :data:`TICK`; a standby tries to take it as often, so it takes over at most
``LEASE_TTL + TICK`` after the leader's last renewal. A leader sends a heartbeat every :data:`HEARTBEAT_INTERVAL`.
An edge that has not heard a leader for :data:`SOURCE_TIMEOUT` ends its streams with UNAVAILABLE: longer than a
takeover (so the clients of an edge keep their streams through one), short enough that they move to a healthy
edge within seconds when the edge itself is cut off.

An edge follows the newest epoch it hears; if that leader then says nothing for :data:`FOLLOWED_SILENCE` while an
older one is heard (a message from a forged future epoch), it follows the one heard again, before its streams would
end: such a message costs at most that long.
"""

LEASE_TTL = 2.0
"""Seconds a lease lasts unless renewed."""
TICK = 0.25
"""Seconds between a leader's renewals, and between a standby's attempts to take the lease."""
HEARTBEAT_INTERVAL = 0.5
CATALOG_TTL = 3.0
"""Seconds the leader's catalogue stays in Redis after its last heartbeat: present means a leader is alive."""
SOURCE_TIMEOUT = 5.0
"""Seconds an edge serves without hearing its leader (Redis down, or no leader) before it ends its streams."""
FOLLOWED_SILENCE = SOURCE_TIMEOUT - 2 * HEARTBEAT_INTERVAL
"""Seconds the leader an edge follows may be silent while an older epoch is heard: a leader's lease lapses in
less, and an older epoch cannot write, so past it what the edge followed was no leader."""
REDIS_TIMEOUT = 1.0
"""Seconds a Redis request may take: well under the lease, so a hung Redis cannot keep a leader past it."""
REDIS_RETRY_CAP = 1.0
"""Seconds a book node or an edge waits at most between two attempts to reach Redis (the wait grows from a tick up
to this): a Redis back, or a new master after a Sentinel failover, is found within about a second, well under the
lease and the source timeout, rather than after a wait grown past them."""
SOURCE_TURN = 0.002
"""Seconds an edge's source works through messages already waiting before it lets the streams run: a message
waiting on the socket never blocks, so without a turn a flood on the channel would keep them from sending at all."""

