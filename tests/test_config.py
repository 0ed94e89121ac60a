"""Configuration: defaults, flags, ORDERBOOK_* variables (the flag wins), and one clear error for bad values."""

from __future__ import annotations

import pytest

from orderbook.address import Address
from orderbook.config import MAX_SYMBOLS, Config, ConfigError, VenueSettings, load_config
from orderbook.exchanges.binance import BinanceVenue
from orderbook.exchanges.bitstamp import BitstampVenue

DEFAULTS = Config(
    symbols=("ETHBTC",),
    depth=10,
    grpc_addr=Address("127.0.0.1", 5002),
    metrics_addr=Address("127.0.0.1", 9102),
    venues=(
        VenueSettings("binance", "wss://stream.binance.com:9443", "https://api.binance.com",
                      (("snapshot_limit", 1000),)),
        VenueSettings("bitstamp", "wss://ws.bitstamp.net", "https://www.bitstamp.net"),
    ),
    max_streams=1000,
    serve_processes=0,
    silence_timeout=10.0,
    max_connection_age=84_600.0,
    audit_interval=60.0,
    listing_interval=300.0,
    max_lag=2.0,
    tls_cert=None,
    tls_key=None,
    log_level="info",
    log_format="text",
    demo=False,
)

# flag, a value to give it, the field it sets, the value that field should get, another valid value
SETTINGS = [
    ("--symbol", "btcusdt", "symbols", ("BTCUSDT",), "LTCBTC"),
    ("--depth", "25", "depth", 25, "9"),
    ("--listing-interval", "60", "listing_interval", 60.0, "5"),
    ("--grpc-addr", "0.0.0.0:6000", "grpc_addr", Address("0.0.0.0", 6000), "127.0.0.1:1"),
    ("--metrics-addr", "[::1]:9200", "metrics_addr", Address("::1", 9200), "127.0.0.1:2"),
    ("--binance-ws-url", "ws://127.0.0.1:9001/", "binance_ws_url", "ws://127.0.0.1:9001", "ws://other:1"),
    ("--binance-rest-url", "http://127.0.0.1:9002", "binance_rest_url", "http://127.0.0.1:9002", "http://other:2"),
    ("--bitstamp-ws-url", "wss://ws.example.net", "bitstamp_ws_url", "wss://ws.example.net", "ws://other:3"),
    ("--bitstamp-rest-url", "https://bitstamp.example.net/", "bitstamp_rest_url", "https://bitstamp.example.net",
     "http://other:4"),
    ("--binance-snapshot-limit", "5000", "binance_snapshot_limit", 5000, "10"),
    ("--max-streams", "3", "max_streams", 3, "99"),
    ("--max-streams-per-connection", "7", "max_streams_per_connection", 7, "1"),
    ("--serve-processes", "2", "serve_processes", 2, "64"),
    ("--silence-timeout", "2.5", "silence_timeout", 2.5, "9"),
    ("--max-connection-age", "3", "max_connection_age", 3.0, "0.5"),
    ("--audit-interval", "0", "audit_interval", 0.0, "2.5"),
    ("--max-lag", "0.5", "max_lag", 0.5, "10"),
    ("--tls-cert", "cert.pem", "tls_cert", "cert.pem", "other.pem"),  # with --tls-key (below)
    ("--log-level", "debug", "log_level", "debug", "error"),
    ("--log-format", "json", "log_format", "json", "text"),
    ("--ready-file", "/run/ports.json", "ready_file", "/run/ports.json", "ports.json"),
    ("--taker-fee", "binance=0.001,bitstamp=0.004", "taker_fees",
     (("binance", 1_000_000_000), ("bitstamp", 4_000_000_000)), "bitstamp=0"),
]
IDS = [setting[0] for setting in SETTINGS]
TLS_KEY = ["--tls-key", "key.pem"]

VENUE_FIELDS = [f"{v.name}_{part}" for v in DEFAULTS.venues for part in ("ws_url", "rest_url", *dict(v.options))]
FIELDS = [name for name in DEFAULTS.__slots__ if name != "venues"] + VENUE_FIELDS


def value_of(config: Config, field: str):
    """A setting's value: a venue's URLs and options are read from its VenueSettings."""
    for venue in config.venues:
        options = dict(venue.options)
        for name, value in (("ws_url", venue.ws_url), ("rest_url", venue.rest_url), *options.items()):
            if field == f"{venue.name}_{name}":
                return value
    return getattr(config, field)


def env_name(flag: str) -> str:
    return "ORDERBOOK_" + flag.removeprefix("--").replace("-", "_").upper()


def test_defaults():
    assert load_config([], {}) == DEFAULTS


def test_the_process_environment_is_read_when_none_is_given(monkeypatch):
    monkeypatch.setenv("ORDERBOOK_DEPTH", "7")
    assert load_config([]).depth == 7


def with_key(flag: str) -> list[str]:
    return TLS_KEY if flag == "--tls-cert" else []


@pytest.mark.parametrize(("flag", "value", "field", "expected", "other"), SETTINGS, ids=IDS)
def test_each_flag(flag, value, field, expected, other):
    config = load_config([flag, value, *with_key(flag)], {})
    assert value_of(config, field) == expected
    unchanged = [name for name in FIELDS if name not in (field, "tls_key")]
    assert [value_of(config, name) for name in unchanged] == [value_of(DEFAULTS, name) for name in unchanged]


@pytest.mark.parametrize(("flag", "value", "field", "expected", "other"), SETTINGS, ids=IDS)
def test_each_environment_variable(flag, value, field, expected, other):
    config = load_config(with_key(flag), {env_name(flag): value})
    assert value_of(config, field) == expected


@pytest.mark.parametrize(("flag", "value", "field", "expected", "other"), SETTINGS, ids=IDS)
def test_the_flag_wins_over_the_environment(flag, value, field, expected, other):
    assert value_of(load_config(with_key(flag), {env_name(flag): other}), field) != expected  # a real contest
    assert value_of(load_config([flag, value, *with_key(flag)], {env_name(flag): other}), field) == expected


def test_the_flag_wins_over_the_environment_with_different_values():
    config = load_config(["--symbol", "ETHBTC", "--depth", "5"], {"ORDERBOOK_SYMBOL": "LTCBTC", "ORDERBOOK_DEPTH": "9"})
    assert (config.symbol, config.depth) == ("ETHBTC", 5)


def test_several_symbols_the_first_is_the_default():
    config = load_config(["--symbol", "ethbtc, BTCUSDT,ethusdt,ETHBTC"], {})
    assert config.symbols == ("ETHBTC", "BTCUSDT", "ETHUSDT")  # upper case, each once, in the order given
    assert config.symbol == "ETHBTC"
    assert load_config([], {"ORDERBOOK_SYMBOL": "LTCBTC,ETHBTC"}).symbols == ("LTCBTC", "ETHBTC")


def test_symbols_are_bounded():
    names = [f"S{index:04d}" for index in range(MAX_SYMBOLS + 1)]
    assert len(load_config(["--symbol", ",".join(names[:MAX_SYMBOLS])], {}).symbols) == MAX_SYMBOLS
    with pytest.raises(ConfigError, match=f"--symbol: at most {MAX_SYMBOLS} symbols, got {MAX_SYMBOLS + 1}"):
        load_config(["--symbol", ",".join(names)], {})


def test_the_venue_settings_make_the_venues():
    binance, bitstamp = (settings.venue() for settings in load_config(["--binance-snapshot-limit", "100"], {}).venues)
    assert type(binance) is BinanceVenue and binance.snapshot_limit == 100 and binance.snapshot_weight() == 5
    assert type(bitstamp) is BitstampVenue and bitstamp.rest_base == "https://www.bitstamp.net"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("YES", True), ("on", True), ("0", False), ("false", False), ("off", False),
     ("", False)],
)
def test_demo_from_the_environment(value, expected):
    assert load_config([], {"ORDERBOOK_DEMO": value}).demo is expected


def test_demo_flag_wins_over_a_false_environment():
    assert load_config(["--demo"], {"ORDERBOOK_DEMO": "0"}).demo is True


def test_demo_environment_must_be_a_boolean():
    with pytest.raises(ConfigError, match="ORDERBOOK_DEMO"):
        load_config([], {"ORDERBOOK_DEMO": "maybe"})


def test_unknown_orderbook_variable_is_rejected():
    with pytest.raises(ConfigError, match="ORDERBOOK_SYMBOLS"):
        load_config([], {"ORDERBOOK_SYMBOLS": "ETHBTC"})
    with pytest.raises(ConfigError, match="ORDERBOOK_HELP"):
        load_config([], {"ORDERBOOK_HELP": "1"})


def test_other_variables_are_ignored():
    assert load_config([], {"PATH": "/bin", "ORDERBOOK": "x", "XORDERBOOK_DEPTH": "3"}) == DEFAULTS
    assert load_config([], {"ORDERBOOK_PYTHON": "/usr/bin/python3"}) == DEFAULTS  # read by the bin/ shims


def test_metrics_off():
    assert load_config(["--metrics-addr", "off"], {}).metrics_addr is None
    assert load_config([], {"ORDERBOOK_METRICS_ADDR": "off"}).metrics_addr is None


def test_tls_pair():
    config = load_config(["--tls-cert", "cert.pem", "--tls-key", "key.pem"], {})
    assert (config.tls_cert, config.tls_key) == ("cert.pem", "key.pem")
    config = load_config([], {"ORDERBOOK_TLS_CERT": "c.pem", "ORDERBOOK_TLS_KEY": "k.pem"})
    assert (config.tls_cert, config.tls_key) == ("c.pem", "k.pem")
    for argv in (["--tls-cert", "cert.pem"], ["--tls-key", "key.pem"]):
        with pytest.raises(ConfigError, match="--tls-cert and --tls-key go together"):
            load_config(argv, {})


def test_address_text():
    assert str(Address("127.0.0.1", 5002)) == "127.0.0.1:5002"
    assert str(Address("::1", 5002)) == "[::1]:5002"
    assert load_config(["--grpc-addr", "::1:5002"], {}).grpc_addr == Address("::1", 5002)
    assert load_config(["--grpc-addr", "localhost:0"], {}).grpc_addr == Address("localhost", 0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--symbol", "ETH/BTC"], "--symbol"),
        (["--symbol", "E"], "--symbol"),
        (["--symbol", ""], "--symbol"),
        (["--symbol", "ETH BTC"], "--symbol"),
        (["--symbol", "ETHBTC,ETH/BTC"], "--symbol: .*got 'ETH/BTC'"),
        (["--symbol", "ETHBTC,"], "--symbol"),
        (["--depth", "0"], "--depth"),
        (["--depth", "1001"], "--depth"),
        (["--depth", "-3"], "--depth"),
        (["--binance-snapshot-limit", "0"], "--binance-snapshot-limit"),
        (["--binance-snapshot-limit", "5001"], "--binance-snapshot-limit"),
        (["--max-streams", "0"], "--max-streams"),
        (["--max-streams-per-connection", "0"], "--max-streams-per-connection"),
        (["--serve-processes", "-1"], "--serve-processes"),
        (["--serve-processes", "65"], "--serve-processes"),
        (["--silence-timeout", "0"], "--silence-timeout"),
        (["--silence-timeout", "nan"], "--silence-timeout"),
        (["--silence-timeout", "1"], "--silence-timeout"),  # pings every 0.33 s: near Binance's 5 messages/s
        (["--max-connection-age", "0"], "--max-connection-age"),
        (["--max-connection-age", "nan"], "--max-connection-age"),
        (["--audit-interval", "-1"], "--audit-interval"),
        (["--audit-interval", "inf"], "--audit-interval"),
        (["--max-lag", "0"], "--max-lag"),
        (["--max-lag", "nan"], "--max-lag"),
        (["--max-lag", "inf"], "--max-lag"),
        (["--depth", "50", "--binance-snapshot-limit", "20"], "--binance-snapshot-limit"),
        (["--grpc-addr", "127.0.0.1"], "--grpc-addr"),
        (["--grpc-addr", ":5002"], "--grpc-addr"),
        (["--grpc-addr", "host:port"], "--grpc-addr"),
        (["--grpc-addr", "host:70000"], "--grpc-addr"),
        (["--grpc-addr", "host:-1"], "--grpc-addr"),
        (["--metrics-addr", "nowhere"], "--metrics-addr"),
        (["--binance-ws-url", "https://stream.binance.com"], "--binance-ws-url"),
        (["--binance-ws-url", "stream.binance.com:9443"], "--binance-ws-url"),
        (["--binance-rest-url", "wss://api.binance.com"], "--binance-rest-url"),
        (["--bitstamp-ws-url", "ftp://ws.bitstamp.net"], "--bitstamp-ws-url"),
        (["--bitstamp-rest-url", "https://"], "--bitstamp-rest-url"),
    ],
)
def test_bad_values_are_one_clear_error(argv, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(argv, {})
    assert "\n" not in str(caught.value)


# What the user typed, and the one line that answers it. The same mistake made in an ORDERBOOK_* variable is
# reported under the variable's name (below).
ONE_LINE_ERRORS = [
    (["--depth", "ten"], "--depth: expected a whole number, got 'ten'"),
    (["--depth", "0"], "--depth: expected 1 to 1000, got 0"),
    (["--silence-timeout", "soon"], "--silence-timeout: expected a number, got 'soon'"),
    (["--max-streams", "0"], "--max-streams: expected at least 1, got 0"),
    (["--log-level", "verbose"], "--log-level: expected one of debug, info, warning, error, got 'verbose'"),
    (["--log-format", "xml"], "--log-format: expected one of text, json, got 'xml'"),
    (["--grpc-addr", "127.0.0.1:99999"], "--grpc-addr: the port must be 0-65535, got '127.0.0.1:99999'"),
    (["--grpc-addr", "127.0.0.1"], "--grpc-addr: expected HOST:PORT, got '127.0.0.1'"),
    (["--metrics-addr", "nowhere"], "--metrics-addr: expected HOST:PORT, got 'nowhere'"),
    (["--binance-ws-url", "ftp://example"], "--binance-ws-url: expected a ws or wss URL, got 'ftp://example'"),
    (["--symbol", "ETH/BTC"],
     "--symbol: expected 2 to 20 letters (of any script) and digits like ETHBTC (several: ETHBTC,BTCUSDT), "
     "got 'ETH/BTC'"),
    (["--taker-fee", "kraken=0.001"], "--taker-fee: unknown venue 'kraken' (the venues are binance, bitstamp)"),
    (["--taker-fee", "binance=0.1"], "--taker-fee: binance: expected a fraction from 0 to below 0.1 like 0.001, "
     "got '0.1'"),
    (["--taker-fee", "binance=-0.001"], "--taker-fee: binance: expected a fraction from 0 to below 0.1 like 0.001, "
     "got '-0.001'"),
    (["--taker-fee", "binance"], "--taker-fee: expected VENUE=FRACTION like binance=0.001, got 'binance'"),
    (["--taker-fee", "binance=0.001,binance=0.002"], "--taker-fee: binance is given twice"),
    (["--depth"], "--depth: expected one argument"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
]


@pytest.mark.parametrize(("argv", "message"), ONE_LINE_ERRORS, ids=[" ".join(argv) for argv, _ in ONE_LINE_ERRORS])
def test_each_mistake_is_one_line_naming_the_flag(argv, message, capsys):
    with pytest.raises(ConfigError) as caught:
        load_config(argv, {})
    assert str(caught.value) == message
    assert capsys.readouterr() == ("", "")  # no usage block: the caller prints the one line


ENV_ERRORS = [(argv, message) for argv, message in ONE_LINE_ERRORS if len(argv) == 2]


@pytest.mark.parametrize(("argv", "message"), ENV_ERRORS, ids=[" ".join(argv) for argv, _ in ENV_ERRORS])
def test_the_same_mistake_in_the_environment_names_the_variable(argv, message):
    flag, value = argv
    with pytest.raises(ConfigError) as caught:
        load_config([], {env_name(flag): value})
    assert str(caught.value) == message.replace(flag, env_name(flag))


def test_a_flag_on_the_command_line_is_named_even_when_the_variable_is_set():
    with pytest.raises(ConfigError, match="^--depth: expected 1 to 1000, got 0$"):
        load_config(["--depth", "0"], {"ORDERBOOK_DEPTH": "5"})
    # A malformed variable is refused even when a flag overrides it: the deployment has a mistake in it.
    with pytest.raises(ConfigError, match="^ORDERBOOK_DEPTH: expected a whole number, got 'y'$"):
        load_config(["--depth", "5"], {"ORDERBOOK_DEPTH": "y"})


def test_settings_that_clash_are_named_as_given():
    with pytest.raises(ConfigError, match="^ORDERBOOK_DEPTH 50 is more than --binance-snapshot-limit 20: "):
        load_config(["--binance-snapshot-limit", "20"], {"ORDERBOOK_DEPTH": "50"})
    with pytest.raises(ConfigError, match="^ORDERBOOK_TLS_CERT and --tls-key go together$"):
        load_config([], {"ORDERBOOK_TLS_CERT": "cert.pem"})


def test_an_environment_value_that_looks_like_a_flag_is_still_the_value():
    with pytest.raises(ConfigError, match=r"^ORDERBOOK_SYMBOL: expected 2 to 20 letters \(of any script\) and digits "
                       r"like ETHBTC \(several: ETHBTC,BTCUSDT\), got '--demo'$"):
        load_config([], {"ORDERBOOK_SYMBOL": "--demo"})
    with pytest.raises(ConfigError, match="^ORDERBOOK_DEPTH: expected 1 to 1000, got -3$"):
        load_config([], {"ORDERBOOK_DEPTH": "-3"})


@pytest.mark.parametrize("value", ["DEBUG", "Debug", "debug"])
def test_log_level_and_format_in_any_case(value):
    assert load_config(["--log-level", value], {}).log_level == "debug"
    assert load_config([], {"ORDERBOOK_LOG_LEVEL": value, "ORDERBOOK_LOG_FORMAT": "JSON"}).log_format == "json"
    assert load_config([], {"ORDERBOOK_LOG_LEVEL": value}).log_level == "debug"


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit) as caught:
        load_config(["--help"], {})
    assert caught.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag, value in [("--binance-ws-url", "wss://stream.binance.com:9443"), ("--binance-rest-url",
                        "https://api.binance.com"), ("--bitstamp-ws-url", "wss://ws.bitstamp.net"),
                        ("--bitstamp-rest-url", "https://www.bitstamp.net"), ("--max-streams", "1000"),
                        ("--log-level", "info"), ("--log-format", "text"), ("--depth", "10")]:
        assert f"(default {value})" in text.split(f"{flag} ", 2)[-1].split(" --")[0], flag


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        DEFAULTS.depth = 3  # type: ignore[misc]


def test_publish_takes_a_redis_url_from_the_flag_or_the_environment():
    assert DEFAULTS.publish is None
    assert load_config(["--publish", "redis://10.0.0.5:6379/1"], {}).publish == "redis://10.0.0.5:6379/1"
    assert load_config([], {"ORDERBOOK_PUBLISH": "rediss://:pw@r:6380/0"}).publish == "rediss://:pw@r:6380/0"


def test_a_bad_publish_url_is_one_line_without_its_password():
    with pytest.raises(ConfigError, match=r"^--publish: expected redis://") as refused:
        load_config(["--publish", "http://:s3cret@host:6379"], {})
    assert "s3cret" not in str(refused.value)
    with pytest.raises(ConfigError, match=r"^ORDERBOOK_PUBLISH: the database is a number"):
        load_config([], {"ORDERBOOK_PUBLISH": "redis://host:6379/zero"})


def test_the_edges_variables_are_not_the_servers():
    assert load_config([], {"ORDERBOOK_EDGE_SOURCE": "redis://r:6379/0"}) == DEFAULTS


def test_a_unicode_symbol_is_taken_as_written_and_ascii_letters_upper_cased():
    # Binance's testnet lists 这是测试币456 (CHANGELOG 2025-12-18): letters of any script and digits are a symbol.
    config = load_config(["--symbol", "ethbtc,这是测试币456,Ωmega1"], environ={})
    assert config.symbols == ("ETHBTC", "这是测试币456", "Ωmega1".translate(str.maketrans("mega", "MEGA")))
    for bad in ("ETH BTC", "ETH\tBTC", "ETH\x00BTC", "ETH-BTC", "ETH_BTC", "X", "这" * 21, "ETH\u200bBTC"):
        with pytest.raises(ConfigError, match="letters"):
            load_config(["--symbol", bad], environ={})


def test_the_listing_interval_is_at_least_a_second():
    with pytest.raises(ConfigError, match="ORDERBOOK_LISTING_INTERVAL: expected at least 1 seconds"):
        load_config([], environ={"ORDERBOOK_LISTING_INTERVAL": "0.5"})


def test_recording_settings_are_read_from_flags_and_the_environment(tmp_path):
    config = load_config(["--record", str(tmp_path / "rec"), "--record-summaries", "--record-file-bytes", "65536"],
                         {"ORDERBOOK_RECORD_MAX_BYTES": "1000000"})
    assert (config.record, config.record_summaries) == (str(tmp_path / "rec"), True)
    assert (config.record_file_bytes, config.record_max_bytes) == (65536, 1_000_000)
    assert (tmp_path / "rec").is_dir()  # made at start, and checked
    assert load_config([], {}).record is None


@pytest.mark.parametrize(("args", "message"), [
    (["--record-summaries"], "--record-summaries goes with --record"),
    (["--record", "{tmp}", "--record-file-bytes", "100"], "--record-file-bytes: expected at least 65536, got 100"),
    (["--record", "{tmp}", "--record-max-bytes", "70000", "--record-file-bytes", "80000"],
     "--record-max-bytes 70000 is less than --record-file-bytes 80000"),
    (["--record", "{tmp}/file/sub"], "--record {tmp}/file/sub: cannot record there: Not a directory"),
])
def test_bad_recording_settings_are_one_line(tmp_path, args, message):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError) as raised:
        load_config([arg.format(tmp=tmp_path) for arg in args], {})
    assert str(raised.value) == message.format(tmp=tmp_path)
