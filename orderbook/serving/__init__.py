"""Serving the merged books: the wire encoding, every symbol's books at the depths streamed, the fan-out to
streams, and the gRPC server (in this process or in serving processes fed by it)."""
