"""``bin/bench``: run the benchmark scenarios, print a table, write the same figures as JSON.

    bin/bench [--scenario NAME ...] [--repeat N] [--quick] [--minutes M] [--json PATH] [--profile DIR]
              [--serve-processes N]

Scenarios: ingest, latency, max_rate, fanout, memory, startup (see issue 6 for the targets). Figures are medians
over ``--repeat`` runs (default 3; 1 for the ramp and memory runs, which are long and already sample over time,
and 1 everywhere with ``--quick``). ``--profile DIR`` also writes pyinstrument reports of the ingest pass and of the
server under the latency scenario. Targets are reported, never enforced: the exit code is 0 unless a scenario
could not run at all.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.bench import e2e_scenarios, ingest
from tests.bench.report import Figure, ScenarioResult, repeated, table, write_json

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_JSON = REPO_ROOT / "bench-results" / "latest.json"
SCENARIOS = ("ingest", "latency", "max_rate", "fanout", "memory", "startup")
SINGLE_RUN = ("max_rate", "memory")

log = logging.getLogger("bench")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", choices=SCENARIOS,
                        help="run only this scenario (repeatable); default: all")
    parser.add_argument("--repeat", type=int, help="runs per scenario, medians reported (default 3)")
    parser.add_argument("--quick", action="store_true", help="short runs, one repeat: a smoke test, not figures")
    parser.add_argument("--minutes", type=float, help="length of the memory run (default 1; 0.25 with --quick)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the figures as JSON")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="write pyinstrument reports into DIR")
    parser.add_argument("--serve-processes", type=int, default=0, metavar="N",
                        help="the fan-out scenario's server serves from N processes (default 0: in-process)")
    return parser


def _render_server_profile(session: Path) -> list[Path]:
    from pyinstrument.session import Session

    loaded = Session.load(str(session))
    html, text = session.with_suffix(".html"), session.with_suffix(".txt")
    from pyinstrument.renderers import ConsoleRenderer, HTMLRenderer

    html.write_text(HTMLRenderer().render(loaded), encoding="utf-8")
    text.write_text(ConsoleRenderer(unicode=False, color=False).render(loaded), encoding="utf-8")
    return [html, text]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bench: %(message)s", stream=sys.stderr)
    names = args.scenario or list(SCENARIOS)
    minutes = args.minutes if args.minutes is not None else (0.25 if args.quick else 1.0)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    results: list[ScenarioResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        options = e2e_scenarios.Options(Path(workdir), args.quick, minutes, args.profile, args.serve_processes)
        sources = ingest.IngestSources(args.quick)
        runners: dict[str, Callable[[], tuple[list[Figure], dict[str, Any]]]] = {
            "ingest": lambda: ingest.run_once(sources),
            "latency": lambda: e2e_scenarios.latency(options),
            "max_rate": lambda: e2e_scenarios.max_sustained(options),
            "fanout": lambda: e2e_scenarios.fanout(options),
            "memory": lambda: e2e_scenarios.memory(options),
            "startup": lambda: e2e_scenarios.startup(options),
        }
        for name in names:
            if args.repeat is not None:
                times = args.repeat
            else:
                times = 1 if args.quick or name in SINGLE_RUN else 3
            log.info("%s: %d run(s)", name, times)
            try:
                if name == "latency" and args.profile:
                    # The first run is profiled (pyinstrument slows the server): its figures are kept apart.
                    profiled, _ = runners[name]()
                    log.info("latency under pyinstrument: %s",
                             ", ".join(f"{f.name} {f.value:.3g}" for f in profiled if f.value is not None))
                    options_plain = dataclasses.replace(options, profile_dir=None)
                    runners[name] = lambda: e2e_scenarios.latency(options_plain)
                    log.info("server profile: %s",
                             _render_server_profile(args.profile / "server-latency.pyisession"))
                figures, details = repeated(runners[name], times)
                result = ScenarioResult(name, figures, times, {"runs": details})
            except Exception as error:  # one broken scenario must not hide the others' figures
                log.error("%s failed:\n%s", name, traceback.format_exc())
                result = ScenarioResult(name, [], times, error=f"{type(error).__name__}: {error}")
            results.append(result)
            print(table([result]), flush=True)
        if args.profile and "ingest" in names:
            log.info("ingest profile: %s", ingest.profile(sources, args.profile))
    print()
    print(table(results))
    write_json(args.json, results, {"quick": args.quick, "minutes": minutes, "scenarios": names,
                                    "serve_processes": args.serve_processes})
    print(f"\nfigures written to {args.json}")
    return 1 if any(result.error for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
