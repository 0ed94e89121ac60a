"""``--relay-prefix`` and ``--relay-key``, as book nodes (``bin/run-server``) and edges (``bin/run-edge``) both take
them: from flags or their ``ORDERBOOK_*`` / ``ORDERBOOK_EDGE_*`` variables, checked at start, each mistake one
line naming the setting; the key is read once, at start, and never shown."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from orderbook.config import ConfigError, load_config, load_edge_config

URL = "redis://127.0.0.1:6379/0"
SECRET = b"s3cret-relay-key"


def server(argv: Sequence[str], environ: Mapping[str, str]) -> Any:
    return load_config(["--publish", URL, *argv], environ)


def edge(argv: Sequence[str], environ: Mapping[str, str]) -> Any:
    return load_edge_config(["--source", URL, *argv], environ)


BOTH = pytest.mark.parametrize(("load", "env"), [(server, "ORDERBOOK_"), (edge, "ORDERBOOK_EDGE_")],
                               ids=["run-server", "run-edge"])


@BOTH
def test_by_default_the_keys_are_orderbooks_and_nothing_is_signed(load: Callable[..., Any], env: str) -> None:
    config = load([], {})
    assert (config.relay_prefix, config.relay_key) == ("orderbook", None)


@BOTH
def test_the_flags_and_their_variables(load: Callable[..., Any], env: str, tmp_path: Path) -> None:
    key_file = tmp_path / "relay.key"
    key_file.write_bytes(SECRET + b"\n")  # as `echo` writes it: the newline is not part of the key
    config = load(["--relay-prefix", "desk-2.eu_west", "--relay-key", str(key_file)], {})
    assert (config.relay_prefix, config.relay_key) == ("desk-2.eu_west", SECRET)
    environ = {f"{env}RELAY_PREFIX": "from-env", f"{env}RELAY_KEY": str(key_file)}
    assert (load([], environ).relay_prefix, load([], environ).relay_key) == ("from-env", SECRET)
    assert load(["--relay-prefix", "flag"], environ).relay_prefix == "flag"
    key_file.write_bytes(b"rotated")
    assert config.relay_key == SECRET  # read once, at start
    assert SECRET.decode() not in repr(config)


@BOTH
@pytest.mark.parametrize(("argv", "variable", "message"), [
    (["--relay-prefix", ""], None, "--relay-prefix: expected 1 to 64 letters, digits"),
    (["--relay-prefix", "a:b"], None, "--relay-prefix: expected 1 to 64"),
    (["--relay-prefix", "x" * 65], None, "--relay-prefix: expected 1 to 64"),
    ([], ("RELAY_PREFIX", "with space"), "RELAY_PREFIX: expected 1 to 64"),
    (["--relay-key", "{missing}"], None, "--relay-key {missing}: No such file or directory"),
    (["--relay-key", "{empty}"], None, "--relay-key {empty}: expected a secret of 1 to 4096 bytes, the file has none"),
    (["--relay-key", "{blank}"], None, "--relay-key {blank}: expected a secret of 1 to 4096 bytes, the file has none"),
    (["--relay-key", "{large}"], None, "--relay-key {large}: expected a secret of 1 to 4096 bytes, the file has more"),
    (["--relay-key", "{directory}"], None, "--relay-key {directory}: Is a directory"),
    ([], ("RELAY_KEY", "{missing}"), "RELAY_KEY {missing}: No such file or directory"),
])
def test_each_mistake_is_one_line_naming_the_setting(load: Callable[..., Any], env: str, tmp_path: Path,
                                                      argv: list[str], variable: tuple[str, str] | None,
                                                      message: str) -> None:
    files = {"missing": tmp_path / "missing.key", "empty": tmp_path / "empty.key", "blank": tmp_path / "blank.key",
             "large": tmp_path / "large.key", "directory": tmp_path}
    files["empty"].write_bytes(b"")
    files["blank"].write_bytes(b" \n\t\n")
    files["large"].write_bytes(b"k" * 4097)
    names = {name: str(path) for name, path in files.items()}
    environ = {} if variable is None else {env + variable[0]: variable[1].format(**names)}
    with pytest.raises(ConfigError) as refused:
        load([word.format(**names) for word in argv], environ)
    assert str(refused.value).startswith((env if variable else "") + message.format(**names))
    assert "\n" not in str(refused.value)


def test_a_book_nodes_shard_is_main_by_default_from_the_flag_or_its_variable_and_checked() -> None:
    assert server([], {}).shard == "main"
    assert server(["--shard", "eu-1"], {}).shard == "eu-1"
    assert server([], {"ORDERBOOK_SHARD": "from-env"}).shard == "from-env"
    with pytest.raises(ConfigError, match="^ORDERBOOK_SHARD: expected 1 to 64 letters"):
        server([], {"ORDERBOOK_SHARD": "a:b"})


@pytest.mark.parametrize(("load", "flag"), [(load_config, "--publish"), (load_edge_config, "--source")],
                         ids=["run-server", "run-edge"])
def test_a_sentinel_url_is_taken_and_a_bad_one_is_one_line_without_its_password(load: Callable[..., Any],
                                                                                 flag: str) -> None:
    url = "redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/orderbook/0"
    config = load([flag, url], {})
    assert (config.publish if flag == "--publish" else config.source) == url
    with pytest.raises(ConfigError, match=f"^{flag}: expected redis\\+sentinel://") as refused:
        load([flag, "redis+sentinel://:s3cret@10.0.0.1/orderbook"], {})
    assert "s3cret" not in str(refused.value)
