"""bin/run-edge's settings: flags over ORDERBOOK_EDGE_* variables over the defaults; one line per mistake."""

from __future__ import annotations

import pytest

from orderbook.address import Address
from orderbook.config import ConfigError, EdgeConfig, load_edge_config

URL = "redis://127.0.0.1:6379/0"


def test_defaults_need_only_the_source() -> None:
    assert load_edge_config(["--source", URL], {}) == EdgeConfig(
        source=URL, grpc_addr=Address("127.0.0.1", 5002), metrics_addr=Address("127.0.0.1", 9103), max_streams=1000,
        tls_cert=None, tls_key=None, log_level="info", log_format="text")


def test_every_flag() -> None:
    config = load_edge_config(["--source", URL, "--grpc-addr", "0.0.0.0:6002", "--metrics-addr", "off",
                               "--max-streams", "5000", "--tls-cert", "c.pem", "--tls-key", "k.pem",
                               "--log-level", "debug", "--log-format", "json", "--ready-file", "r.json"], {})
    assert (config.grpc_addr, config.metrics_addr, config.max_streams) == (Address("0.0.0.0", 6002), None, 5000)
    assert (config.tls_cert, config.tls_key, config.log_level, config.log_format, config.ready_file) == (
        "c.pem", "k.pem", "debug", "json", "r.json")


def test_the_environment_and_the_flag_winning_over_it() -> None:
    environ = {"ORDERBOOK_EDGE_SOURCE": URL, "ORDERBOOK_EDGE_MAX_STREAMS": "7", "ORDERBOOK_DEPTH": "3"}
    assert load_edge_config([], environ).max_streams == 7  # the server's variables are not the edge's
    assert load_edge_config(["--max-streams", "9"], environ).max_streams == 9


@pytest.mark.parametrize(("argv", "environ", "message"), [
    ([], {}, "--source is required"),
    (["--source", "http://:s3cret@r:6379"], {}, "--source: expected redis://"),
    ([], {"ORDERBOOK_EDGE_SOURCE": "redis://:s3cret@r/x"}, "ORDERBOOK_EDGE_SOURCE: the database is a number"),
    (["--source", URL, "--max-streams", "0"], {}, "--max-streams: expected at least 1"),
    (["--source", URL, "--tls-cert", "c.pem"], {}, "--tls-cert and --tls-key go together"),
    (["--source", URL, "--grpc-addr", "nowhere"], {}, "--grpc-addr: expected HOST:PORT"),
    (["--source", URL], {"ORDERBOOK_EDGE_SOURSE": URL}, "unknown setting ORDERBOOK_EDGE_SOURSE"),
])
def test_each_mistake_is_one_line_naming_the_setting(argv: list[str], environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_edge_config(argv, environ)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)
    assert "s3cret" not in str(refused.value)


def test_the_default_symbol_is_the_first_shards_unless_given_and_checked() -> None:
    assert load_edge_config(["--source", "redis://127.0.0.1:6379/0"], {}).default_symbol is None
    config = load_edge_config(["--source", "redis://127.0.0.1:6379/0"], {"ORDERBOOK_EDGE_DEFAULT_SYMBOL": "btcusdt"})
    assert config.default_symbol == "BTCUSDT"
    with pytest.raises(ConfigError, match="^--default-symbol: expected 2 to 20 letters"):
        load_edge_config(["--source", "redis://127.0.0.1:6379/0", "--default-symbol", "A"], {})
