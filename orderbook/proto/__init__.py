"""Generated protobuf messages for proto/orderbook.proto (regenerate with ``python -m orderbook.proto.generate``)."""
