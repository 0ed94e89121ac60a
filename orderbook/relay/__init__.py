"""Beyond one machine: book nodes publish every symbol's summary through Redis; stateless edges serve them.

    book node (bin/run-server --publish URL) ──┐                         ┌── edge (bin/run-edge --source URL)
    book node (standby, same flags)  ──────────┼── Redis (one channel, ──┼── edge
                                               │    one latest hash)     └── ...

* :mod:`~orderbook.relay.envelope`: what travels (``proto/orderbook_relay.proto``): a symbol's summary and state,
  or a heartbeat with the catalogue, each with the leader's epoch, a sequence number and its publish time, signed
  with ``--relay-key`` when there is one; and every check of one read back.
* :mod:`~orderbook.relay.keys`: the Redis keys of one deployment (``--relay-prefix``), the lease, and the scripts
  that act on them atomically.
* :mod:`~orderbook.relay.rejections`: what is read from Redis is input; a value no book node wrote is counted by
  reason, logged and ignored.
* :mod:`~orderbook.relay.node`: the book node's side: the lease (set-if-absent with expiry, an epoch that only
  grows), one deployment per key space, and publishing while leader.
* :mod:`~orderbook.relay.timing`: the clocks (lease, tick, heartbeat, the edge's source timeout) and how they bound
  each other.
* :mod:`~orderbook.relay.source`: the edge's side: follow Redis, feeding the books it serves (the edge process
  itself, serving them over gRPC, is :mod:`orderbook.edge`, as the book node's is :mod:`orderbook.app`).
* :mod:`~orderbook.relay.redis_url`: the Redis URLs, ``redis+sentinel://`` included (the client asks the
  sentinels where the master is at each new connection, so it follows a failover).
* :mod:`~orderbook.relay.redis_process` and :mod:`~orderbook.relay.demo`: a private redis-server (and a replica and
  sentinels), and ``make cluster-demo``.

The symbols may be split over shards (``--shard``): each shard has its own keys, lease, epoch and leader, and an
edge follows every shard listed in Redis, serving them as one (:mod:`orderbook.serving.shards`).
"""
