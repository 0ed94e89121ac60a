"""Local exchange simulator: Binance and Bitstamp wire protocols on loopback."""
