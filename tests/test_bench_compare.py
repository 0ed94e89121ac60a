"""bin/bench --compare: what each side runs, the alternation, and the medians and ratios it prints (pure parts; the
runs themselves are bin/bench's)."""

from __future__ import annotations

from pathlib import Path

from tests.bench import compare
from tests.bench.compare import REPO_ROOT, WORKING_TREE, Runs, merged, order, ratio, read_figures, table
from tests.bench.live import SERVICE_CHECKOUT, launcher
from tests.bench.report import Figure
from tests.bench.run import side_args


def test_each_side_runs_the_command_line_without_compare_repeat_and_json() -> None:
    assert side_args(["--compare", "HEAD~1", "--scenario", "ingest", "--repeat", "5", "--json", "x.json",
                      "--quick"]) == ["--scenario", "ingest", "--quick"]
    assert side_args(["--compare=HEAD", "--repeat=2", "--json=x", "--scenario=relay_latency"]) == [
        "--scenario=relay_latency"]
    assert side_args(["--compare", "HEAD", "--service-only", "--scenario", "burst"]) == ["--scenario", "burst"]


def test_with_service_only_the_revision_side_runs_this_harness_with_the_revision_s_servers(tmp_path, monkeypatch):
    started: list[tuple[list[str], str | None]] = []

    def run(command, env, **_):
        started.append((command, env.get(SERVICE_CHECKOUT)))
        json_path = Path(command[command.index("--json") + 1])
        json_path.write_text('{"scenarios": {"burst": {"figures": []}}}')

    monkeypatch.setattr(compare.subprocess, "run", run)
    monkeypatch.setenv(SERVICE_CHECKOUT, "/somewhere/else")
    compare.run_side(REPO_ROOT, ["--scenario", "burst"], tmp_path / "a.json", service=tmp_path / "rev")
    compare.run_side(REPO_ROOT, ["--scenario", "burst"], tmp_path / "b.json")
    assert [command[0] for command, _ in started] == [str(REPO_ROOT / "bin" / "bench")] * 2
    assert [service for _, service in started] == [str(tmp_path / "rev"), None]
    assert launcher("run-server") == Path("/somewhere/else/bin/run-server")


def test_the_sides_take_turns_going_first() -> None:
    assert [order(index, "abc") for index in range(3)] == [("abc", WORKING_TREE), (WORKING_TREE, "abc"),
                                                           ("abc", WORKING_TREE)]


def _runs(**values: float | None) -> Runs:
    return {"ingest": [Figure(name, value, "frames/s") for name, value in values.items()]}


def test_rounds_are_merged_into_medians_and_a_missing_figure_is_a_run_without_a_value() -> None:
    rounds = [_runs(rate=100.0, p50=2.0), _runs(rate=300.0), _runs(rate=200.0, p50=4.0)]
    result = merged(rounds)
    rate, p50 = result["ingest"]
    assert (rate.name, rate.value, rate.runs) == ("rate", 200.0, [100.0, 300.0, 200.0])
    assert (p50.name, p50.value, p50.runs) == ("p50", 3.0, [2.0, None, 4.0])


def test_the_ratio_is_this_tree_over_the_revision() -> None:
    assert ratio(Figure("rate", 100.0, "frames/s"), Figure("rate", 250.0, "frames/s")) == 2.5
    assert ratio(Figure("rate", None, "frames/s"), Figure("rate", 250.0, "frames/s")) is None
    assert ratio(None, Figure("rate", 250.0, "frames/s")) is None
    assert ratio(Figure("rate", 0.0, "frames/s"), Figure("rate", 250.0, "frames/s")) is None


def test_the_table_shows_both_sides_their_ranges_and_the_ratio() -> None:
    before = merged([_runs(rate=100.0), _runs(rate=120.0), _runs(rate=110.0)])
    after = merged([_runs(rate=220.0), _runs(rate=200.0), _runs(rate=240.0)])
    lines = table("HEAD~1", before, after).splitlines()
    assert "ratio = working tree / HEAD~1" in lines[0]
    row = lines[-1].split()
    assert row == ["ingest", "rate", "frames/s", "110", "100..120", "220", "200..240", "2.00x"]


def test_figures_are_read_back_from_bench_json() -> None:
    document = {"scenarios": {"ingest": {"figures": [{"name": "rate", "value": 5.0, "unit": "frames/s",
                                                       "target": 10.0, "better": "higher"}]},
                              "relay_latency": {"figures": [], "error": "boom"}}}
    runs = read_figures(document)
    assert runs["ingest"][0] == Figure("rate", 5.0, "frames/s", 10.0, "higher")
    assert runs["relay_latency"] == []
