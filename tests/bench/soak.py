"""The soak: simulator + server as processes, 50 clients reading, a random fault every few seconds, for minutes.

    bin/soak [--minutes 10] [--clients 50] [--fault-every 5] [--seed N] [--json PATH]

How the served book is judged fairly while the market keeps moving: every ``--check-every`` seconds the soak
stops injecting, ends any silence once the server has had time to notice it, lets the market run 2 s more (so a
hidden gap or a swapped pair of diffs is followed by the event that reveals it), then pauses the simulator and
polls, five times a second, whether a reader's latest book equals the simulator's true merged top 10 (the market
is paused only while the server reports both exchanges in step: Binance needs a live event to get back in step).
The bound it must meet, from the start of the check, is 3 s plus the backoff in force (every "reconnecting in
X s" / "retrying in X s" the server logs, followed live), plus the detection bound of a fault injected since the
last check (the silence timeout after a silence, the snapshot timeout after a REST request that never answers).
Any time past the bound is counted as divergence. Memory, greenlets and descriptors come from the server's
/metrics (and VmHWM from /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests" / "clients"))

from orderbook.simulator.faults import MALFORMED_KINDS  # noqa: E402
from orderbook.simulator.process import SimulatorControl, SimulatorProcess  # noqa: E402
from tests.metrics_scrape import scrape  # noqa: E402
from tests.support.service import Book, BookReader, ServerProcess  # noqa: E402

STREAM_CLIENTS = REPO_ROOT / "tests" / "clients" / "stream_clients.py"
EXCHANGES = ("binance", "bitstamp")
SETTLE_BOUND = 3.0
"""Once nothing is broken or backing off, the served book must equal the truth within this many seconds."""
SNAPSHOT_TIMEOUT = 10.0
"""The server's read timeout on a snapshot request (orderbook.feed.FeedSettings.snapshot_timeout)."""
RUN_BEFORE_CHECK = 2.0
OVERSHOOT_CAP = 60.0
"""How long past its bound a check keeps waiting, to measure a divergence rather than just flag it."""
REST_RETRY_AFTER = 2
_DELAY_LINE = re.compile(r"(\w+): (?:session ended \(\w+\); reconnecting|snapshot request answered .*; retrying) "
                         r"in ([\d.]+) s")


@dataclass(frozen=True)
class SoakConfig:
    minutes: float = 10.0
    clients: int = 50
    fault_every: float = 5.0
    seed: int = 1
    check_every: float = 20.0
    rate: float = 50.0
    silence_timeout: float = 5.0
    exclude: tuple[str, ...] = ()
    """Fault kinds (or their prefix, e.g. "rest_") left out of the draw."""
    json_path: Path | None = None
    workdir: Path | None = None


@dataclass
class Check:
    at: float
    """Seconds since the start of the soak."""
    bound: float
    matched_after: float | None
    """Seconds from the pause to the served book equal to the truth (None: not even OVERSHOOT_CAP past the bound)."""
    beyond_bound: float
    detail: str = ""
    """For a check that did not match: per exchange, whether its served levels differ and whether it is in step."""


@dataclass
class SoakReport:
    config: dict[str, object]
    duration_s: float = 0.0
    faults: dict[str, int] = field(default_factory=dict)
    faults_total: int = 0
    rebuilds: dict[str, float] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)
    """One line per fault and per check, wall-clock stamped like the server log, to read the two side by side."""
    divergence_beyond_bound_s: float = 0.0
    rss_start_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_final_mb: float = 0.0
    rss_hwm_mb: float | None = None
    rss_series_mb: list[float] = field(default_factory=list)
    """Every tenth of the once-a-second RSS samples (none are taken during checks): a plateau or a climb?"""
    greenlets_start: float = 0.0
    greenlets_end: float = 0.0
    fds_start: float = 0.0
    fds_end: float = 0.0
    open_streams_end: float = 0.0
    clients_alive: bool = False
    crashed: bool = False
    server_exit_code: int | None = None
    tracebacks: int = 0
    error_lines: int = 0

    @property
    def ok(self) -> bool:
        return (self.divergence_beyond_bound_s == 0 and not self.crashed and self.tracebacks == 0
                and self.clients_alive and bool(self.checks))


def vm_hwm_mb(pid: int) -> float | None:
    """Peak resident memory of a process, from /proc (Linux only)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else None


class LogFollower:
    """Follows the server log: when each exchange may be back at the earliest (backoff, Retry-After), errors."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stop = threading.Event()
        self.not_before: dict[str, float] = {}
        self.error_lines = 0
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        with self._path.open(errors="replace") as log:
            while True:
                line = log.readline()
                if not line:
                    if self._stop.wait(0.05):
                        return
                    continue
                self._line(line)

    def _line(self, line: str) -> None:
        match = _DELAY_LINE.search(line)
        if match is not None:
            ready = time.monotonic() + float(match.group(2))
            self.not_before[match.group(1)] = max(self.not_before.get(match.group(1), 0.0), ready)
        if " ERROR " in line or " CRITICAL " in line:
            self.error_lines += 1

    def latest_ready(self) -> float:
        return max(self.not_before.values(), default=0.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


def fault_catalogue(control: SimulatorControl) -> list[tuple[str, Callable[[], object]]]:
    """Every fault the simulator offers, as (kind, inject). A REST fault is followed by a drop, so that it bites."""
    faults: list[tuple[str, Callable[[], object]]] = [
        ("gap", control.gap),
        ("stale_snapshot", control.stale_snapshot),
        ("server_shutdown", control.server_shutdown),
        ("request_reconnect", lambda: control.request_reconnect(after=1.0)),
        ("reorder", control.reorder),
        ("cross", control.cross),
    ]
    for exchange in EXCHANGES:
        faults += [
            (f"drop:{exchange}", partial(control.drop, exchange)),
            (f"close:{exchange}", partial(control.close, exchange)),
            (f"silence:{exchange}", partial(control.silence, exchange, True)),
        ]
        for status in ("429", "418", "500", "hang"):
            def rest(ex: str = exchange, status: str = status) -> None:
                control.rest(ex, status, retry_after=REST_RETRY_AFTER)
                control.drop(ex)

            faults.append((f"rest_{status}:{exchange}", rest))
        for kind in MALFORMED_KINDS:
            faults.append((f"malformed_{kind}:{exchange}", partial(control.malformed, exchange, kind)))
    return faults


class Soak:
    def __init__(self, config: SoakConfig, workdir: Path) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.simulator = SimulatorProcess("--seed", str(config.seed), "--rate", str(config.rate),
                                          "--log-level", "WARNING").start()
        self.control = self.simulator.control
        self.server = ServerProcess(self.simulator.urls, workdir / "server.log",
                                    "--silence-timeout", str(config.silence_timeout))
        self.log = LogFollower(self.server.log_path)
        self.faults = [(kind, inject) for kind, inject in fault_catalogue(self.control)
                       if not kind.startswith(config.exclude)]
        self.injected: Counter[str] = Counter()
        self.timeline: list[str] = []
        self.silence_ends: dict[str, float] = {}
        self.extra_bound = 0.0
        self.rss_samples: list[float] = []
        self.started = time.monotonic()
        self.reader: BookReader | None = None
        self.clients: subprocess.Popen[bytes] | None = None

    # -- the run ---------------------------------------------------------------------------------------------

    def run(self) -> SoakReport:
        config = self.config
        report = SoakReport(config={k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()})
        try:
            self._start_clients()
            start = scrape(self.server.metrics_port)
            report.rss_start_mb = start.value("process_resident_memory_bytes") / 2**20
            report.greenlets_start = start.value("orderbook_greenlets")
            report.fds_start = start.value("process_open_fds")
            self.started = time.monotonic()
            end = self.started + config.minutes * 60
            next_fault = self.started + config.fault_every
            next_check = self.started + config.check_every
            next_sample = self.started
            while time.monotonic() < end and not self._crashed():
                now = time.monotonic()
                if now >= next_check:
                    report.checks.append(self._check())
                    next_fault = time.monotonic() + config.fault_every
                    next_check = time.monotonic() + config.check_every
                elif now >= next_fault:
                    self._inject()
                    next_fault += config.fault_every
                self._end_due_silences()
                if now >= next_sample:
                    self.rss_samples.append(scrape(self.server.metrics_port).value("process_resident_memory_bytes"))
                    next_sample += 1.0
                time.sleep(0.1)
            if not self._crashed():
                report.checks.append(self._check())
                self._finish(report)
        finally:
            report.duration_s = round(time.monotonic() - self.started, 1)
            report.crashed = self._crashed()
            report.server_exit_code = self._stop()
            report.tracebacks = self.server.log().count("Traceback")
            report.error_lines = self.log.error_lines
            report.faults = dict(sorted(self.injected.items()))
            report.timeline = self.timeline
            report.faults_total = sum(self.injected.values())
            report.divergence_beyond_bound_s = round(sum(check.beyond_bound for check in report.checks), 2)
            if self.rss_samples:
                report.rss_peak_mb = max(self.rss_samples) / 2**20
                report.rss_series_mb = [round(rss / 2**20, 1) for rss in self.rss_samples[::10]]
        return report

    def _start_clients(self) -> None:
        self.server.wait_serving(30)
        self.reader = BookReader(self.server.target)
        self.reader.wait_for(lambda book: book.exchanges() == set(EXCHANGES), 30, "with both exchanges")
        self.clients = subprocess.Popen(
            [sys.executable, str(STREAM_CLIENTS), self.server.target, "--streams", str(self.config.clients)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        assert self.clients.stdout is not None
        if self.clients.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the {self.config.clients} clients did not start")
        time.sleep(1.0)  # let the server settle before the starting figures

    def _finish(self, report: SoakReport) -> None:
        """Figures once the last check has passed: nothing broken, every stream still open."""
        time.sleep(2.0)
        end = scrape(self.server.metrics_port)
        report.rss_final_mb = end.value("process_resident_memory_bytes") / 2**20
        report.greenlets_end = end.value("orderbook_greenlets")
        report.fds_end = end.value("process_open_fds")
        report.open_streams_end = end.value("orderbook_grpc_open_streams")
        report.rebuilds = {
            f"{exchange}/{reason}": value
            for (exchange, reason), value in end.by_label("orderbook_book_rebuilds_total", "exchange", "reason").items()
        }
        report.rss_hwm_mb = vm_hwm_mb(self.server.proc.pid)
        report.clients_alive = self.clients is not None and self.clients.poll() is None and (
            self.reader is not None and self.reader.error is None)

    def _crashed(self) -> bool:
        return self.server.proc.poll() is not None

    def _stop(self) -> int | None:
        if self.clients is not None:
            if self.clients.stdin is not None:
                self.clients.stdin.close()
            try:
                self.clients.wait(10)
            except subprocess.TimeoutExpired:
                self.clients.kill()
        if self.reader is not None:
            self.reader.close()
        code = self.server.proc.returncode if self._crashed() else self.server.terminate()
        self.log.stop()
        self.simulator.stop()
        return code

    # -- faults ----------------------------------------------------------------------------------------------

    def _inject(self) -> None:
        kind, inject = self.rng.choice(self.faults)
        if kind.startswith("silence:") and kind.split(":")[1] in self.silence_ends:
            return  # already silent
        inject()
        self.injected[kind] += 1
        self._note(f"fault {kind}")
        if kind.startswith("silence:"):
            # Long enough for the server to notice (that is the fault under test), then the venue speaks again.
            self.silence_ends[kind.split(":")[1]] = time.monotonic() + self.config.silence_timeout + 2.0
            self.extra_bound = max(self.extra_bound, self.config.silence_timeout)
        elif kind.startswith("rest_hang:"):
            self.extra_bound = max(self.extra_bound, SNAPSHOT_TIMEOUT)

    def _end_due_silences(self, force_wait: bool = False) -> None:
        for exchange, ends_at in list(self.silence_ends.items()):
            if force_wait:
                time.sleep(max(0.0, ends_at - time.monotonic()))
            if time.monotonic() >= ends_at:
                self.control.silence(exchange, False)
                del self.silence_ends[exchange]

    def _note(self, event: str) -> None:
        now = time.time()
        self.timeline.append(f"{time.strftime('%H:%M:%S', time.localtime(now))}.{int(now % 1 * 1000):03d} {event}")

    # -- the fair comparison ---------------------------------------------------------------------------------

    def _check(self) -> Check:
        """Time how long until the served book equals the truth of a paused market; see the module docstring.

        The market is paused only while the server says both exchanges are in step: an exchange that is rebuilding
        may need live events to get back in step (Binance waits for one before taking a snapshot), and a frozen
        market would hold it out forever. A book served as in step but unequal to the truth is what is caught.
        """
        self._end_due_silences(force_wait=True)
        time.sleep(RUN_BEFORE_CHECK)
        started_at = time.monotonic()
        at = round(started_at - self.started, 1)
        self._note("check: started")
        extra, self.extra_bound = self.extra_bound, 0.0
        detail = ""
        truth: Book | None = None
        assert self.reader is not None
        try:
            while True:
                now = time.monotonic()
                deadline = max(started_at, self.log.latest_ready()) + SETTLE_BOUND + extra
                bound, beyond = round(deadline - started_at, 2), round(max(0.0, now - deadline), 2)
                in_step = self._in_step()
                if truth is None and all(in_step.get(exchange) for exchange in EXCHANGES):
                    self.control.pause()
                    truth = Book.from_truth(self.control.truth(10)["merged"])
                elif truth is not None and not all(in_step.get(exchange) for exchange in EXCHANGES):
                    self.control.resume()
                    truth = None
                if truth is not None and self.reader.latest == truth:
                    return Check(at, bound, round(now - started_at, 2), beyond, detail)
                if now > deadline and not detail:
                    detail = self._difference(truth or Book.from_truth(self.control.truth(10)["merged"]), in_step)
                    self._note(f"check: past its bound ({detail})")
                if now > deadline + OVERSHOOT_CAP or self._crashed():
                    return Check(at, bound, None, beyond, detail)
                time.sleep(0.2)
        finally:
            self.control.resume()
            self._note("check: ended, market running")

    def _in_step(self) -> dict[str, float]:
        if self._crashed():
            return {}
        samples = scrape(self.server.metrics_port).by_label("orderbook_exchange_in_step", "exchange")
        return {exchange: value for (exchange,), value in samples.items()}

    def _difference(self, truth: Book, in_step: dict[str, float]) -> str:
        """Per exchange: whether its served levels are not its true best levels, and whether it claims in step."""
        served = self.reader.latest if self.reader is not None else None
        true_books = self.control.truth(10)
        parts = []
        for exchange in EXCHANGES:
            for side in ("bids", "asks"):
                rows = [(r.price, r.amount) for r in getattr(served, side, ()) if r.exchange == exchange]
                best = [(float(p), float(a)) for p, a in true_books[exchange][side]][:len(rows)]
                if not rows or rows != best:
                    state = "served as in step" if in_step.get(exchange) else "not in step"
                    parts.append(f"{exchange} {side} {'absent' if not rows else 'wrong'} ({state})")
        return "; ".join(parts) or "the merge differs"


def run_soak(config: SoakConfig) -> SoakReport:
    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        workdir = config.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        report = Soak(config, workdir).run()
        if config.json_path is not None:
            config.json_path.write_text(json.dumps({**asdict(report), "ok": report.ok}, indent=2) + "\n")
        if not report.ok:
            tail = (workdir / "server.log").read_text(errors="replace").splitlines()[-40:]
            print("server log (last lines):", *tail, sep="\n", file=sys.stderr)
        return report


def render(report: SoakReport) -> str:
    settles = [check.matched_after for check in report.checks if check.matched_after is not None]
    rows = [
        ("duration", f"{report.duration_s:.0f} s"),
        ("faults injected", str(report.faults_total)),
        *((f"  {kind}", str(count)) for kind, count in report.faults.items()),
        ("rebuilds (server)", f"{sum(report.rebuilds.values()):.0f}"),
        *((f"  {key}", f"{value:.0f}") for key, value in sorted(report.rebuilds.items())),
        ("checks (paused market)", str(len(report.checks))),
        ("  matched the truth", f"{len(settles)} of {len(report.checks)}"),
        ("  time to match, median / max",
         f"{statistics.median(settles):.2f} / {max(settles):.2f} s" if settles else "-"),
        ("  largest bound allowed", f"{max((c.bound for c in report.checks), default=0):.1f} s"),
        ("divergence beyond the bounds", f"{report.divergence_beyond_bound_s:.2f} s"),
        *((f"  at {check.at:.0f} s", check.detail) for check in report.checks if check.beyond_bound),
        ("RSS start / peak / final",
         f"{report.rss_start_mb:.1f} / {report.rss_peak_mb:.1f} / {report.rss_final_mb:.1f} MiB"),
        ("RSS high-water mark (VmHWM)", f"{report.rss_hwm_mb:.1f} MiB" if report.rss_hwm_mb else "-"),
        ("greenlets start / end", f"{report.greenlets_start:.0f} / {report.greenlets_end:.0f}"),
        ("open fds start / end", f"{report.fds_start:.0f} / {report.fds_end:.0f}"),
        ("streams open at the end", f"{report.open_streams_end:.0f}"),
        ("clients alive at the end", "yes" if report.clients_alive else "NO"),
        ("server crashed", "YES" if report.crashed else "no"),
        ("server exit code", str(report.server_exit_code)),
        ("tracebacks / ERROR lines in the log", f"{report.tracebacks} / {report.error_lines}"),
        ("verdict", "PASS" if report.ok else "FAIL"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--fault-every", type=float, default=5.0, help="seconds between faults")
    parser.add_argument("--check-every", type=float, default=20.0, help="seconds between paused-market checks")
    parser.add_argument("--rate", type=float, default=50.0, help="simulator events per second per exchange")
    parser.add_argument("--silence-timeout", type=float, default=5.0, help="passed to the server")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--exclude", default="", help="comma-separated fault kinds (or prefixes) not to inject")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--workdir", type=Path, help="keep the server log here (default: a temporary directory)")
    args = parser.parse_args(argv)
    report = run_soak(SoakConfig(
        minutes=args.minutes, clients=args.clients, fault_every=args.fault_every, seed=args.seed,
        check_every=args.check_every, rate=args.rate, silence_timeout=args.silence_timeout,
        exclude=tuple(kind for kind in args.exclude.split(",") if kind), json_path=args.json, workdir=args.workdir,
    ))
    print(render(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
