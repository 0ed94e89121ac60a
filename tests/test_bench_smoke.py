"""bin/bench in quick mode: it runs, its output is the progress lines and one table, and its JSON has every
figure, positive, with the range of its runs and the machine it ran on. --check's exit status, --profile without
pyinstrument and --help are checked without measuring anything.

Timing targets are never asserted here (the machine is shared and noisy); only that the figures exist and are sane,
and that --check's verdict agrees with the figures whatever they were.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from orderbook.simulator.config import SimulatorConfig
from tests.bench import ingest as ingest_module
from tests.bench import run, symbols
from tests.bench.report import Figure, ScenarioResult, table
from tests.metrics_scrape import Samples

REPO_ROOT = Path(__file__).resolve().parent.parent
TABLE_TITLE = "bin/bench: "


def _bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO_ROOT / "bin" / "bench"), *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, "ORDERBOOK_PYTHON": sys.executable},
    )


@pytest.fixture(scope="module")
def quick_ingest_and_latency(starts_processes, tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], dict]:
    """One quick run of the ingest and latency scenarios with --check, read by the tests below (they only read it):
    the figures' shape and --check's verdict come from the same run instead of two runs of the ingest scenario.
    --check changes only the exit status and its one stderr line; its default is checked without measuring
    (test_without_check_a_missed_target_is_only_reported)."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    result = _bench("--quick", "--scenario", "ingest", "--scenario", "latency", "--check", "--json", str(out))
    assert out.exists(), result.stdout + result.stderr[-3000:]
    return result, json.loads(out.read_text())


def _missed(document: dict) -> list[str]:
    """"scenario: figure" for every figure that missed its target, in the order --check names them."""
    return [f"{name}: {figure['name']}" for name, scenario in document["scenarios"].items()
            for figure in scenario["figures"] if figure["pass"] is False]


@pytest.mark.alone
def test_quick_ingest_and_latency_write_positive_figures(quick_ingest_and_latency):
    result, document = quick_ingest_and_latency
    assert result.returncode in (0, 1), result.stderr[-3000:]  # 1 only for a missed target: see the --check test
    assert "frames/s" in result.stdout and "send->receipt" in result.stdout
    # Quiet: one progress line per scenario, the table once, none of the in-process feeds' INFO lines.
    assert result.stdout.count(TABLE_TITLE) == 1, result.stdout
    progress = [line for line in result.stdout.splitlines() if " run ... " in line]
    assert [line.split(":")[0] for line in progress] == ["ingest", "latency"], result.stdout
    assert "in step" not in result.stdout + result.stderr
    missed = _missed(document)
    assert result.stderr == (f"bin/bench --check: {len(missed)} missed: {'; '.join(missed)}\n" if missed else ""), (
        result.stderr[-3000:])  # nothing but --check's own verdict
    assert document["machine"]["cores"] == os.cpu_count()
    assert set(document["scenarios"]) == {"ingest", "latency"}
    for scenario in document["scenarios"].values():
        assert scenario["error"] is None, scenario["error"]
        assert scenario["cores"] == os.cpu_count() and scenario["python"].startswith("3.")
        assert scenario["repeat"] == 1 and scenario["figures"]
        for figure in scenario["figures"]:
            assert set(figure) >= {"name", "value", "unit", "target", "pass", "runs", "min", "max"}
            if figure["value"] is not None:
                assert figure["min"] <= figure["value"] <= figure["max"], figure
            if figure["target"] is not None:
                assert figure["pass"] in (True, False), figure
    ingest = {figure["name"]: figure for figure in document["scenarios"]["ingest"]["figures"]}
    for source in ("recorded", "simulated"):
        for depth in (100, 5000):
            assert ingest[f"{source} frames/s @{depth} lvls"]["value"] > 0
            assert ingest[f"{source} frames/s @{depth} lvls"]["target"] == 20_000
        assert ingest[f"{source} cost 5000/100 lvls"]["value"] > 0
    runs = document["scenarios"]["ingest"]["details"]["runs"][0]
    assert 0 < runs["simulated@5000"]["summaries_published"] <= runs["simulated@5000"]["frames"]
    latency = {figure["name"]: figure for figure in document["scenarios"]["latency"]["figures"]}
    assert 0 < latency["p50 send->receipt"]["value"] <= latency["p99 send->receipt"]["value"]
    assert latency["p99 send->receipt"]["value"] <= latency["max send->receipt"]["value"]
    assert document["scenarios"]["latency"]["details"]["runs"][0]["samples"] > 100


@pytest.mark.alone
def test_check_fails_the_run_exactly_when_a_figure_missed_its_target(quick_ingest_and_latency):
    """Whether this machine meets the targets is not known in advance: the exit status must agree with the figures
    the run itself wrote, either way."""
    result, document = quick_ingest_and_latency
    missed = _missed(document)
    assert result.returncode == (1 if missed else 0), result.stdout + result.stderr[-3000:]
    if missed:
        assert f"--check: {len(missed)} missed" in result.stderr, result.stderr


@pytest.mark.usefixtures("starts_processes")  # the table's platform.platform() runs uname -p on 3.12+
def test_without_check_a_missed_target_is_only_reported(tmp_path, monkeypatch, capsys):
    """bin/bench's default and --check, through its command line, on a scenario that misses its target whatever
    the machine (nothing is measured)."""
    missed = Figure("frames/s", 1.0, "frames/s", 20_000.0, "higher", [1.0])
    monkeypatch.setattr(ingest_module, "run_once", lambda sources: ([missed], {}))
    assert run.main(["--quick", "--scenario", "ingest", "--json", str(tmp_path / "default.json")]) == 0
    assert capsys.readouterr().err == ""
    assert run.main(["--quick", "--scenario", "ingest", "--check", "--json", str(tmp_path / "check.json")]) == 1
    assert capsys.readouterr().err == "bin/bench --check: 1 missed: ingest: frames/s\n"


def _result(name: str, *figures: Figure, error: str | None = None) -> ScenarioResult:
    return ScenarioResult(name, list(figures), 1, error=error)


def test_exit_status_reports_by_default_and_fails_missed_targets_only_with_check():
    met = _result("a", Figure("rate", 30.0, "frames/s", 20.0, "higher"), Figure("info", 1.0, "ms"))
    missed = _result("b", Figure("p99", 9.0, "ms", 5.0, "lower"))
    no_value = _result("c", Figure("p99", None, "ms", 5.0, "lower"))  # a target with nothing measured is missed
    broken = _result("d", error="RuntimeError: no server")
    assert run.exit_status([met], check=False) == 0
    assert run.exit_status([met], check=True) == 0
    assert run.exit_status([met, missed], check=False) == 0
    assert run.exit_status([met, missed], check=True) == 1
    assert run.exit_status([no_value], check=True) == 1
    assert run.exit_status([met, broken], check=False) == 1
    assert run.exit_status([met, broken], check=True) == 1


@pytest.mark.usefixtures("starts_processes")  # the table's platform.platform() runs uname -p on 3.12+
def test_table_shows_the_range_of_repeated_runs_only():
    repeated = ScenarioResult("latency", [Figure("p50", 2.0, "ms", 1.0, "lower", [1.5, 2.0, 3.25])], 3)
    single = ScenarioResult("startup", [Figure("net", 0.25, "s", 1.0, "lower", [0.25])], 1)
    text = table([repeated, single])
    assert text.count(TABLE_TITLE) == 1
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith(("latency", "startup"))}
    assert "1.5..3.25" in rows["latency"] and rows["latency"].split()[-1] == "FAIL"
    assert ".." not in rows["startup"] and rows["startup"].split()[-1] == "pass"
    partly = ScenarioResult("fanout", [Figure("all connected", 3.0, "s", 5.0, "lower", [None, 3.0, None])], 3)
    assert "(2 of 3 n/a)" in table([partly])


def test_profile_without_pyinstrument_stops_before_running_with_the_install_command(tmp_path, monkeypatch, capsys):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "pyinstrument" else find_spec(name, *rest))
    out = tmp_path / "bench.json"
    status = run.main(["--profile", str(tmp_path / "profile"), "--scenario", "ingest", "--quick", "--json", str(out)])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""  # nothing ran
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    assert "pip install -e '.[bench]'" in captured.err
    assert not out.exists() and not (tmp_path / "profile").exists()


@pytest.mark.usefixtures("starts_processes")
def test_help_is_plain_text():
    result = _bench("--help", timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: bench")
    assert "`" not in result.stdout and ":mod:" not in result.stdout
    assert "--check" in result.stdout and "--profile" in result.stdout
    assert "--symbols" in result.stdout and "symbols_ramp" in result.stdout
    assert all(f"{name} (" in result.stdout for name in ("relay_latency", "relay_fanout", "relay_takeover"))


@pytest.mark.alone
@pytest.mark.usefixtures("starts_processes")
def test_quick_relay_latency_writes_sane_figures(tmp_path):
    """One book node and an edge on a private Redis, both paths timed on the same probes (what the figures are is
    the machine's; only that they are sane). relay_takeover's kills are what tests/e2e/test_cluster.py checks."""
    out = tmp_path / "bench.json"
    result = _bench("--quick", "--scenario", "relay_latency", "--json", str(out))
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    scenario = json.loads(out.read_text())["scenarios"]["relay_latency"]
    assert scenario["error"] is None, scenario["error"]
    latency = {figure["name"]: figure["value"] for figure in scenario["figures"]}
    for path in ("direct", "edge"):
        assert 0 < latency[f"{path} p50 frame->client"] <= latency[f"{path} p99 frame->client"]
    assert latency["hop at p50 (edge - direct)"] == pytest.approx(
        latency["edge p50 frame->client"] - latency["direct p50 frame->client"])
    details = scenario["details"]["runs"][0]
    assert details["edge"]["samples"] > 100 and details["direct"]["samples"] > 100
    assert details["to_redis"]["samples"] > 20 and details["watch_errors"] == []


# -- the many-symbols scenario -------------------------------------------------------------------------------


def test_symbol_names_are_distinct_valid_for_server_and_simulator_and_each_list_starts_the_longer_ones():
    names = symbols.symbol_names(symbols.MAX_SYMBOLS)
    assert names[0] == "ETHBTC"  # the default symbol: BookSummary serves it, the simulator's probes mark it
    assert len(set(names)) == len(names) == symbols.MAX_SYMBOLS
    assert all(re.fullmatch(r"[A-Z0-9]{2,20}", name) for name in names)  # run-server's rule (orderbook.config)
    SimulatorConfig(symbol=names[0], extra_symbols=tuple(names[1:]))  # the simulator's rules: no ConfigError
    assert symbols.symbol_names(100) == names[:100] and symbols.symbol_names(1) == ["ETHBTC"]
    assert symbols.symbol_names(3) == ["ETHBTC", "BTCUSDT", "ETHUSDT"]
    with pytest.raises(ValueError):
        symbols.symbol_names(0)


def _in_step(*rows: tuple[dict[str, str], int]) -> Samples:
    lines = ["# TYPE orderbook_exchange_in_step gauge"]
    for labels, value in rows:
        text = ",".join(f'{key}="{label}"' for key, label in labels.items())
        lines.append(f"orderbook_exchange_in_step{{{text}}} {value}")
    return Samples("\n".join(lines) + "\n")


def test_in_step_is_read_per_symbol_and_a_one_symbol_servers_unlabelled_gauge_is_the_default_symbols():
    one = _in_step(({"exchange": "binance"}, 1), ({"exchange": "bitstamp"}, 0))
    assert symbols.not_in_step(one, ["ETHBTC"]) == ["bitstamp/ETHBTC"]
    assert symbols.not_in_step(_in_step(({"exchange": "binance"}, 1), ({"exchange": "bitstamp"}, 1)),
                               ["ETHBTC"]) == []
    many = _in_step(({"exchange": "binance", "symbol": "ETHBTC"}, 1),
                    ({"exchange": "bitstamp", "symbol": "ETHBTC"}, 1),
                    ({"exchange": "binance", "symbol": "BTCUSDT"}, 1),
                    ({"exchange": "bitstamp", "symbol": "BTCUSDT"}, 0))
    # A venue with no sample at all for a symbol is not in step either (the simulator lists every symbol on both).
    assert symbols.not_in_step(many, ["ETHBTC", "BTCUSDT", "ETHUSDT"]) == [
        "bitstamp/BTCUSDT", "binance/ETHUSDT", "bitstamp/ETHUSDT"]
    assert symbols.in_step_venues(many, ["ETHBTC"]) == {"ETHBTC": {"binance", "bitstamp"}}


def test_deepened_books_and_rate_limit_answers_are_read_per_symbol_and_status():
    text = "\n".join([
        "# TYPE orderbook_book_deepenings_total counter",
        'orderbook_book_deepenings_total{exchange="binance",symbol="ETHBTC",result="deepened"} 1',
        'orderbook_book_deepenings_total{exchange="binance",symbol="BTCUSDT",result="skipped"} 2',
        'orderbook_book_deepenings_total{exchange="bitstamp",symbol="ETHUSDT",result="deepened"} 1',
        "# TYPE orderbook_snapshot_errors_total counter",
        'orderbook_snapshot_errors_total{exchange="binance",status="429"} 2',
        'orderbook_snapshot_errors_total{exchange="binance",status="418"} 1',
        'orderbook_snapshot_errors_total{exchange="binance",status="500"} 4',
    ]) + "\n"
    samples = Samples(text)
    assert symbols.not_deepened(samples, ["ETHBTC", "BTCUSDT", "ETHUSDT"]) == ["BTCUSDT", "ETHUSDT"]
    assert (symbols.rate_limited(samples, "binance"), symbols.rate_limited(samples, "bitstamp")) == (3, 0)


def test_peak_rate_is_the_fastest_stretch_of_at_least_a_second():
    points = [(0.0, 0), (0.5, 0), (1.0, 10), (1.5, 30), (2.0, 31), (3.5, 32)]
    assert symbols.peak_rate(points) == pytest.approx(30.0)  # 0.5 s -> 1.5 s
    assert symbols.peak_rate([(0.0, 0), (0.5, 5)]) is None


def test_the_many_symbols_p99_is_a_ratio_to_the_one_symbol_p99_of_the_same_run():
    def step(count: int, p99: float | None) -> dict:
        return {"symbols": count, "latency": {"p99_ms": p99}}

    alone = step(1, 2.0)
    within, past = symbols.p99_ratio_figure(step(500, 3.9), alone), symbols.p99_ratio_figure(step(500, 4.2), alone)
    assert (within.value, within.passed) == (pytest.approx(1.95), True)
    assert (past.value, past.passed) == (pytest.approx(2.1), False)
    assert symbols.p99_ratio(step(500, None), alone) is None
    assert symbols.p99_ratio(step(500, 3.0), step(1, None)) is None


def test_cpu_seconds_reads_this_process():
    before = symbols.cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    assert 0.1 < symbols.cpu_seconds(os.getpid()) - before < 5


def test_threads_run_queue_seconds_sums_every_thread_of_the_process(monkeypatch):
    """Each thread's wait for a core is its own schedstat's; the process's is their sum, never less than its main
    thread's. (Other threads of this process may end meanwhile: only the test's own are sure to live through it.)"""
    pid, stop = os.getpid(), threading.Event()
    threads = [threading.Thread(target=stop.wait) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        main = symbols.run_queue_seconds(pid)
        assert main <= symbols.threads_run_queue_seconds(pid)  # read in that order: waits only grow
        read: list[str] = []

        def one_ns(schedstat: Path) -> int:
            read.append(schedstat.parent.name)
            return 1

        monkeypatch.setattr(symbols, "_waited_ns", one_ns)
        assert symbols.threads_run_queue_seconds(pid) == len(read) / 1e9
        assert {str(pid), *(str(thread.native_id) for thread in threads)} <= set(read)
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def _bench_figures(out: Path) -> tuple[dict[str, dict], dict]:
    scenario = json.loads(out.read_text())["scenarios"]["symbols"]
    assert scenario["error"] is None, scenario["error"]
    return {figure["name"]: figure for figure in scenario["figures"]}, scenario["details"]["runs"][0]


def _assert_step_is_sane(figures: dict[str, dict], step: dict, count: int) -> None:
    prefix = f"{count} sym: "
    assert figures[prefix + "start -> all in step"]["value"] > 0
    assert figures[prefix + "start -> all deepened"]["value"] >= figures[prefix + "start -> all in step"]["value"]
    assert figures[prefix + "429/418 at start-up"]["value"] == 0
    assert figures[prefix + "book process CPU"]["value"] > 0
    assert figures[prefix + "book process CPU"]["target"] == (0.5 if count <= 100 else None)
    assert figures[prefix + "simulator CPU"]["value"] > 0
    assert 0 <= figures[prefix + "client process waiting for a core"]["value"] < 1
    assert figures[prefix + "RSS"]["value"] > 20
    assert 0 < figures[prefix + "p50 frame->client"]["value"] <= figures[prefix + "p99 frame->client"]["value"]
    assert figures[prefix + "p99 frame->client"]["target"] == 5.0
    assert step["symbols"] == count and step["not_in_step_after"] == [] and step["latency"]["samples"] > 10
    for venue, rate in (("binance", 10), ("bitstamp", 3)):
        assert step["pacing"][venue]["requests"] >= count  # a snapshot of every symbol at least
        assert step["frames"][venue]["sent_per_s"] == pytest.approx(rate * count, rel=0.3)


@pytest.mark.alone
@pytest.mark.usefixtures("starts_processes")
def test_quick_symbols_scenario_runs_the_one_symbol_step_then_two_symbols(tmp_path):
    """``--symbols 2`` runs the one-symbol step (every count's RSS baseline) and then the two-symbol one, so one run
    covers both; where run-server takes a single symbol, ``--symbols 1`` runs that step alone."""
    counts = [1] if symbols.symbol_lists_refused(["ETHBTC", "BTCUSDT"]) else [1, 2]
    out = tmp_path / "bench.json"
    result = _bench("--quick", "--scenario", "symbols", "--symbols", str(counts[-1]), "--json", str(out))
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    figures, run_details = _bench_figures(out)
    assert [step["symbols"] for step in run_details["steps"]] == counts
    for step in run_details["steps"]:
        _assert_step_is_sane(figures, step, step["symbols"])
    assert "1 sym: RSS per added symbol" not in figures  # nothing is added to the one-symbol server
    if counts[-1] == 2:
        assert figures["2 sym: RSS per added symbol"]["target"] == 2.0
        assert figures["2 sym: RSS per added symbol"]["value"] is not None


def test_symbols_scenario_says_at_once_that_run_server_takes_one_symbol(tmp_path, capsys):
    if symbols.symbol_lists_refused(["ETHBTC", "BTCUSDT"]) is None:
        pytest.skip("run-server takes a list of symbols: the two-symbol run covers the scenario")
    out = tmp_path / "bench.json"
    started = time.monotonic()
    assert run.main(["--quick", "--scenario", "symbols", "--symbols", "1,2", "--json", str(out)]) == 1
    assert time.monotonic() - started < 5  # refused before any process started, the one-symbol step included
    error = json.loads(out.read_text())["scenarios"]["symbols"]["error"]
    assert "run-server takes no symbol list yet; use --symbols 1" in error, error
    capsys.readouterr()


@pytest.mark.usefixtures("starts_processes")
def test_symbol_counts_are_checked_as_a_usage_error():
    result = _bench("--symbols", "100,x", timeout=30)
    assert result.returncode == 2 and "--symbols" in result.stderr
    result = _bench("--symbols-ramp", "0", timeout=30)
    assert result.returncode == 2 and "--symbols-ramp" in result.stderr


# -- the overload scenario -----------------------------------------------------------------------------------


@pytest.mark.alone
@pytest.mark.usefixtures("starts_processes")
def test_quick_overload_scenario_pushes_binance_behind_says_so_and_brings_it_back(tmp_path):
    """The ramp, the push past it and the calm after, once and short: whatever the rates are (the machine's), the
    push must have taken Binance out of step (the simulator sends about twice what the book process applies and
    publishes, every symbol being read), only once its lag was past the bound, and the calm must have brought it
    back without a reconnect."""
    from tests.bench import overload

    out = tmp_path / "bench.json"
    result = _bench("--quick", "--scenario", "overload", "--json", str(out), timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    scenario = json.loads(out.read_text())["scenarios"]["overload"]
    assert scenario["error"] is None, scenario["error"]
    figures = {figure["name"]: figure for figure in scenario["figures"]}
    details = scenario["details"]["runs"][0]
    steps, pushed = details["steps"], details["push"]
    assert [step["asked"] for step in steps] == list(overload.QUICK_RAMP[:len(steps)])
    assert all(step["sent_per_s"] > 0 and step["samples"] >= 2 for step in steps)
    assert steps[-1]["sustained"] is False or len(steps) == len(overload.QUICK_RAMP)
    assert pushed["said_behind"], pushed
    assert 0 <= pushed["after_lag_passed_s"] <= pushed["after_raised_s"], pushed
    assert figures["lag when said behind / bound"]["value"] >= 1.0  # said behind only past the bound
    assert figures["said behind, after the lag passed the bound"]["target"] == overload.SAID_BEHIND_WITHIN
    assert figures["lag when said behind / bound"]["target"] == pytest.approx(1.5)
    assert figures["received while behind"]["value"] > 0
    assert details["recovered_s"] is not None and details["binance_reconnects"] == 0, details
    readers = details["readers"]
    assert readers["with_a_summary_at_start"] == readers["symbols"] == overload.SYMBOLS, readers
    assert readers["errors"] == 0 and readers["summaries"] >= overload.SYMBOLS, readers


def test_the_transport_scenario_reads_every_frame_both_ways(starts_processes):
    from tests.bench import transport

    figures, details = transport.transport(quick=True)
    assert details["frames"] == 2_000 and details["payload_bytes"] > 50
    assert [figure.name for figure in figures] == [
        "read us/frame (service)", "read us/frame (websocket-client)", "read cost service/websocket-client"]
    assert all(figure.value is not None and figure.value > 0 for figure in figures)


def test_the_burst_scenario_times_every_frame_to_the_client_at_both_depths(starts_processes, tmp_path):
    from tests.bench import burst
    from tests.bench.e2e_scenarios import Options

    figures, details = burst.burst(Options(tmp_path, quick=True, minutes=0.25))
    assert [figure.name for figure in figures][:3] == [
        "end to end frames/s @60 lvls", "in process frames/s @60 lvls", "end to end / in process @60 lvls"]
    assert len(figures) == 6 and all(figure.value is not None and figure.value > 0 for figure in figures)
    for levels in burst.LEVELS:
        run = details[f"{levels} levels"]
        assert run["end_to_end"]["frames"] == run["in_process"]["frames"] == 2_000
        # Every frame of the burst reached the server (and the few before it): the client's summary was the last.
        assert run["end_to_end"]["server_frames"] >= 2_000


def test_the_record_scenario_measures_both_ways_and_the_bytes_a_frame() -> None:
    """In process, quick: the figures exist and are sane (the ratio's target is the benchmark's business)."""
    from tests.bench import record

    figures, details = record.record(quick=True)
    value = {figure.name: figure.value or 0.0 for figure in figures}
    for way in ("plain", "record", "record+summaries"):
        assert value[f"ingest frames/s {way}"] > 0
    assert next(figure for figure in figures if figure.name == "ingest record/plain").target == record.MIN_RATIO
    assert 5 < value["bytes on disk/frame record"] < 200  # compressed: the frames are ~300 bytes
    assert value["bytes on disk/frame record+summaries"] > value["bytes on disk/frame record"]
    assert details["frames"] > 1000
