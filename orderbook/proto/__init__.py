"""Generated protobuf messages for proto/orderbook.proto and proto/orderbook_streams.proto (regenerate with
``python -m orderbook.proto.generate``)."""
