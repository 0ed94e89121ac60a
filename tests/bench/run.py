"""``bin/bench``: run the benchmark scenarios, print one line per scenario as it ends, then a table of the figures,
and write the same figures as JSON.

The in-process ingest scenario drives the server's own feed objects, whose INFO logging (an "in step" line per
replayed snapshot) would bury the output: this process logs at WARNING, as do the servers and simulators it
starts. ``--profile`` needs pyinstrument (the ``bench`` extra); without it the run stops before starting, rather
than failing after minutes of measuring. Targets are reported, and enforced only with ``--check``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from tests.bench import (abuse, burst, compare, e2e_scenarios, ingest, overload, quotes, record, relay, shards,
                         symbols, transport)
from tests.bench.report import Figure, ScenarioResult, failed_targets, repeated, table, write_json

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_JSON = REPO_ROOT / "bench-results" / "latest.json"
SCENARIOS = ("ingest", "record", "transport", "burst", "latency", "max_rate", "fanout", "memory", "startup", "abuse",
             "symbols", "symbols_ramp", "relay_latency", "relay_fanout", "relay_takeover", "overload", "quote_cost",
             "quote_streams", "shards")
DEFAULT_SCENARIOS = tuple(name for name in SCENARIOS if name not in ("symbols_ramp", "shards"))
"""What runs without --scenario: the ramp takes many minutes (a start-up of hundreds of symbols per step), and the
shards scenario a few (four deployments, one with Sentinel)."""
SINGLE_RUN = ("max_rate", "memory", "abuse", "symbols", "symbols_ramp", "relay_fanout", "relay_takeover", "overload",
              "shards")
"""Run once unless --repeat says otherwise: long, or (relay_takeover: ten kills) a sample of their own."""

log = logging.getLogger("bench")


DESCRIPTION = """\
Runs the benchmark scenarios against the exchange simulator on loopback, prints
one line per scenario as it finishes, then a table of the figures with their
targets, and writes the same figures as JSON.

Scenarios: ingest (in process, no sockets), record (that ingest with and
without --record, and --record-summaries: the ratio, bytes on disk a frame),
transport (reading 20,000 frames
waiting on a loopback WebSocket: the service's reader and websocket-client's,
per frame, and their ratio), burst (20,000 Binance frames queued at once,
until a client's summary equals the truth they left, at 60 and 1,000 levels,
against the same frames in process: their ratio), latency (1,000 frames/s, 10
clients), max_rate (ramp until the server stops keeping up), fanout (200 then
1,000 streams), memory (two 5,000-level books for --minutes), startup (launch
to the first full summary), abuse (careless and hostile clients: CPU under 100
cancels/s with 500 idle streams, /metrics latency under a scrape storm, RSS
after a flood of malformed calls), symbols (one server following one symbol,
then each --symbols count: Binance 10 and Bitstamp 3 frames/s per symbol,
1,000-level books; start-up to all in step and the snapshot pacing behind it,
the book process's CPU and RSS, p50/p99 for a client of one symbol).
symbols_ramp, run only when named, steps through --symbols-ramp until that
p99 passes 5 ms.

The relay scenarios run a private redis-server (Debian's package, installed
on first use when run as root): relay_latency (one book node publishing
through Redis and one edge, 1,000 frames/s; the same probes timed by 5
clients of the book node and 5 of the edge at once: p50/p99 of each and the
hop, edge less direct), relay_fanout (two edges, 1,000 streams each,
connected while the market is paused: delivery p50/p99, streams receiving,
each edge's CPU), relay_takeover (two book nodes, one edge and its client;
the leader is killed with SIGKILL 10 times, 3 with --quick: kill to the
client's first summary of the new leader, median and worst). shards, run
only when named (tests/bench/shards.py): symbols per core with one shard and
with two (the same 40 symbols, 10 with --quick), each shard's takeover time
(two shards of two book nodes, an edge), and the failover time through
Sentinel (a master, a replica, three sentinels: kill -9 of the master to the
edge's client's next summary).

overload: one server following 40 symbols with --max-lag 2; Binance's rate
ramped until the books fall behind: the highest rate sustained with every
book in step and the lag under the bound and not growing, then pushed past
it: how long the service takes to say Binance is behind (in step 0) after
the lag passed the bound and after the rate was raised, and to be back in
step once it drops.

quote_cost (in process): one quote update (the walk net of fees and its
QuoteUpdate encoded) at two 1,000-level books, for amounts walking 1, 10 and
500 levels. quote_streams: 100 BookSummary streams timed by the probes at
1,000 frames/s, then again beside 100 Quote streams (20 distinct requests):
the ratio of their p99, target at most 1.2.

Each value is the median of --repeat runs (default 3; 1 for max_rate,
memory, abuse, symbols, symbols_ramp, relay_fanout, relay_takeover,
overload and shards, which are long or repeat inside; 1 everywhere with --quick),
shown with the range of the runs. Targets are reported; with --check the
exit status is 1 when any target is missed."""

EPILOG = """\
Exit status: 0 when every scenario ran (targets are only reported), 1 when a
scenario could not run or, with --check, when a target was missed, 2 for a
usage error (including --profile without pyinstrument)."""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _counts(text: str) -> tuple[int, ...]:
    """``100,200``: symbol counts, each from 1 to what the simulator serves."""
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected counts like 100,200, got {text!r}") from None
    if not all(1 <= count <= symbols.MAX_SYMBOLS for count in counts):
        raise argparse.ArgumentTypeError(f"each count must be 1 to {symbols.MAX_SYMBOLS}, got {text!r}")
    return counts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", choices=SCENARIOS,
                        help="run only this scenario (repeatable); default: all but symbols_ramp")
    parser.add_argument("--repeat", type=_positive, metavar="N",
                        help="runs per scenario, medians reported (default 3; see above)")
    parser.add_argument("--quick", action="store_true", help="short runs, one repeat: a smoke test, not figures")
    parser.add_argument("--minutes", type=float, help="length of the memory run (default 1; 0.25 with --quick)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="PATH",
                        help="where to write the figures as JSON (default: bench-results/latest.json)")
    parser.add_argument("--check", action="store_true",
                        help="exit with status 1 when any figure misses its target (default: only report)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="also write pyinstrument reports (ingest pass, server under latency, book node and edge "
                             "under relay_latency) into DIR; needs the bench extra")
    parser.add_argument("--serve-processes", type=int, default=0, metavar="N",
                        help="the fan-out scenario's server serves from N processes (default 0: in-process)")
    parser.add_argument("--compare", metavar="REV",
                        help="run the scenarios on git revision REV (a temporary worktree) and on this working tree "
                             "alternately, --repeat rounds (default 3), and print both with the ratio")
    parser.add_argument("--service-only", action="store_true",
                        help="with --compare: both sides run this tree's scenarios and simulator, REV's side with "
                             "REV's bin/run-server and bin/run-edge (for a scenario REV does not have)")
    default_counts = ",".join(map(str, symbols.DEFAULT_COUNTS))
    default_ramp = ",".join(map(str, symbols.DEFAULT_RAMP))
    parser.add_argument("--symbols", type=_counts, default=symbols.DEFAULT_COUNTS, metavar="N[,N...]",
                        help=f"symbol counts of the symbols scenario, each after a one-symbol step "
                             f"(default {default_counts})")
    parser.add_argument("--symbols-ramp", type=_counts, default=symbols.DEFAULT_RAMP, metavar="N[,N...]",
                        help=f"steps of the symbols_ramp scenario, up to the first over 5 ms (default {default_ramp})")
    return parser


PROFILED: dict[str, tuple[Callable[[e2e_scenarios.Options], tuple[list[Figure], dict[str, Any]]], tuple[str, ...]]] = {
    "latency": (e2e_scenarios.latency, ("server-latency.pyisession",)),
    "relay_latency": (relay.relay_latency, (relay.NODE_PROFILE, relay.EDGE_PROFILE)),
}
"""The scenarios ``--profile`` runs once more, first, under pyinstrument, and the sessions that run writes."""


def _pyinstrument_missing() -> str | None:
    """The one-line error for --profile without pyinstrument, naming the command that installs it; None if it is
    there. The servers the latency scenario profiles run on this same interpreter, so one check covers them."""
    if importlib.util.find_spec("pyinstrument") is not None:
        return None
    if Path(sys.prefix).resolve() == (REPO_ROOT / ".venv").resolve():
        install = ".venv/bin/pip install -e '.[bench]'"
    else:
        install = f"{sys.executable} -m pip install -e '.[bench]' (from {REPO_ROOT})"
    return f"bin/bench: --profile needs pyinstrument, which is not installed; install it with: {install}"


def exit_status(results: list[ScenarioResult], check: bool) -> int:
    """1 when a scenario could not run, or (with ``check``) when any figure missed its target; else 0."""
    if any(result.error for result in results):
        return 1
    return 1 if check and failed_targets(results) else 0


def _outcome(result: ScenarioResult) -> str:
    if result.error:
        return f"ERROR {result.error[:100]}"
    verdicts = [figure.passed for figure in result.figures]
    passed, failed = verdicts.count(True), verdicts.count(False)
    return f"{passed} pass, {failed} FAIL" if passed or failed else "no targets"


def _render_server_profile(session: Path) -> list[Path]:
    from pyinstrument.session import Session

    loaded = Session.load(str(session))
    html, text = session.with_suffix(".html"), session.with_suffix(".txt")
    from pyinstrument.renderers import ConsoleRenderer, HTMLRenderer

    html.write_text(HTMLRenderer().render(loaded), encoding="utf-8")
    text.write_text(ConsoleRenderer(unicode=False, color=False).render(loaded), encoding="utf-8")
    return [html, text]


def side_args(argv: Sequence[str]) -> list[str]:
    """The command line each side of a --compare runs: ``argv`` without --compare, --service-only, --repeat and
    --json (the comparison sets those itself)."""
    kept: list[str] = []
    words = iter(argv)
    for word in words:
        flag = word.split("=", 1)[0]
        if flag == "--service-only":
            continue
        if flag in ("--compare", "--repeat", "--json"):
            if "=" not in word:
                next(words, None)
            continue
        kept.append(word)
    return kept


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.compare:
        words = sys.argv[1:] if argv is None else argv
        return compare.compare(args.compare, side_args(words), args.repeat or 3, args.json, args.service_only)
    if args.service_only:
        print("bench: --service-only needs --compare REV", file=sys.stderr)
        return 2
    if args.profile and (missing := _pyinstrument_missing()):
        print(missing, file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    names = args.scenario or list(DEFAULT_SCENARIOS)
    minutes = args.minutes if args.minutes is not None else (0.25 if args.quick else 1.0)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    results: list[ScenarioResult] = []
    notes: list[str] = []  # what the profiles wrote, printed after the table so the progress stays one line each
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        options = e2e_scenarios.Options(Path(workdir), args.quick, minutes, args.profile, args.serve_processes)
        sources = ingest.IngestSources(args.quick)
        runners: dict[str, Callable[[], tuple[list[Figure], dict[str, Any]]]] = {
            "ingest": lambda: ingest.run_once(sources),
            "record": lambda: record.record(args.quick),
            "transport": lambda: transport.transport(args.quick),
            "burst": lambda: burst.burst(options),
            "latency": lambda: e2e_scenarios.latency(options),
            "max_rate": lambda: e2e_scenarios.max_sustained(options),
            "fanout": lambda: e2e_scenarios.fanout(options),
            "memory": lambda: e2e_scenarios.memory(options),
            "startup": lambda: e2e_scenarios.startup(options),
            "abuse": lambda: abuse.abuse(options.workdir, args.quick),
            "symbols": lambda: symbols.symbols(options, args.symbols),
            "symbols_ramp": lambda: symbols.symbols_ramp(options, args.symbols_ramp),
            "relay_latency": lambda: relay.relay_latency(options),
            "relay_fanout": lambda: relay.relay_fanout(options),
            "relay_takeover": lambda: relay.relay_takeover(options),
            "shards": lambda: shards.shards(options),
            "overload": lambda: overload.overload(options),
            "quote_cost": lambda: quotes.quote_cost(args.quick),
            "quote_streams": lambda: quotes.quote_streams(options),
        }
        for name in names:
            if args.repeat is not None:
                times = args.repeat
            else:
                times = 1 if args.quick or name in SINGLE_RUN else 3
            print(f"{name}: {times} run{'s' if times > 1 else ''} ...", end=" ", flush=True)
            started = time.monotonic()
            failure = None
            try:
                if name in PROFILED and args.profile:
                    # The first run is profiled (pyinstrument slows the servers): its figures are kept apart.
                    scenario, sessions = PROFILED[name]
                    profiled, _ = runners[name]()
                    notes.append(f"{name} under pyinstrument (not in the table): " + ", ".join(
                        f"{f.name} {f.value:.3g} {f.unit}" for f in profiled if f.value is not None))
                    runners[name] = partial(scenario, dataclasses.replace(options, profile_dir=None))
                    notes.append("server profile: " + ", ".join(
                        str(path) for session in sessions for path in _render_server_profile(args.profile / session)))
                figures, details = repeated(runners[name], times)
                result = ScenarioResult(name, figures, times, {"runs": details})
            except Exception as error:  # noqa: BLE001 - one broken scenario must not hide the others' figures
                failure = traceback.format_exc()
                result = ScenarioResult(name, [], times, error=f"{type(error).__name__}: {error}")
            print(f"{time.monotonic() - started:.0f} s, {_outcome(result)}", flush=True)
            if failure:
                log.error("%s failed:\n%s", name, failure)
            results.append(result)
        if args.profile and "ingest" in names:
            notes.append("ingest profile: " + ", ".join(map(str, ingest.profile(sources, args.profile))))
    print()
    print(table(results))
    write_json(args.json, results, {"quick": args.quick, "minutes": minutes, "scenarios": names,
                                    "serve_processes": args.serve_processes, "check": args.check,
                                    "symbols": args.symbols, "symbols_ramp": args.symbols_ramp})
    for note in notes:
        print(note)
    print(f"figures written to {args.json}")
    status = exit_status(results, args.check)
    if args.check and status:
        failed = failed_targets(results)
        print(f"bin/bench --check: {len(failed)} missed: {'; '.join(failed)}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
