"""Serving the merged book: the wire encoding, the fan-out to streams, and the gRPC server."""
