"""Generated protobuf messages for proto/*.proto: orderbook.proto, orderbook_streams.proto, orderbook_relay.proto and
orderbook_quotes.proto (regenerate with ``python -m orderbook.proto.generate``)."""
