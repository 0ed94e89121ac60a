"""A real-time consolidated Binance + Bitstamp order book, streamed over gRPC."""
