"""Run ``bin/exchange-sim`` as a child process and drive it over its control API (for tests and benchmarks).

Plain blocking code (``subprocess``, ``requests``): it works in an ordinary pytest process, and in a
monkey-patched one too. The simulator itself always runs in its own process, with its own gevent hub.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]
EXCHANGE_SIM = REPO_ROOT / "bin" / "exchange-sim"
START_TIMEOUT = 15.0
BURST_EVENTS_PER_SECOND = 5_000
"""A rate a burst's model steps surely beat (60,000 events/s on an idle core here, 20,000 beside ``stress --cpu 2``):
the answer to ``POST /burst`` comes once every event is queued."""


class SimulatorError(RuntimeError):
    """The simulator did not start, or the control API refused a call (the message says why)."""


class SimulatorControl:
    """One method per control call; each returns the decoded JSON answer or raises SimulatorError."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = requests.Session()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        response = self._http.request(method, f"{self.base_url}{path}", json=body, params=params,
                                      timeout=timeout or self.timeout)
        answer = response.json()
        if response.status_code != 200:
            raise SimulatorError(f"{method} {path}: HTTP {response.status_code}: {answer.get('error', answer)}")
        return answer

    def end_session(self) -> None:
        """Release the HTTP connection pool (``close`` is the fault of that name)."""
        self._http.close()

    # -- state -------------------------------------------------------------------------------------------

    def truth(self, depth: int | None = None, symbol: str | None = None) -> dict[str, Any]:
        """The true books of ``symbol`` (default: the simulator's default symbol)."""
        params = {key: value for key, value in (("depth", depth), ("symbol", symbol)) if value is not None}
        return self._call("GET", "/truth", params=params or None)

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/stats")

    def urls(self) -> dict[str, str]:
        return self._call("GET", "/urls")

    def pause(self) -> dict[str, Any]:
        return self._call("POST", "/pause")

    def resume(self) -> dict[str, Any]:
        return self._call("POST", "/resume")

    def set_rate(self, binance: float | None = None, bitstamp: float | None = None) -> dict[str, Any]:
        rates = {name: rate for name, rate in (("binance", binance), ("bitstamp", bitstamp)) if rate is not None}
        return self._call("POST", "/rate", rates)

    def burst(self, exchange: str, events: int) -> dict[str, Any]:
        """``events`` events of ``exchange`` queued at once (paused only); ``queued_at``: time.monotonic() then."""
        return self._call("POST", "/burst", {"exchange": exchange, "events": events},
                          timeout=self.timeout + events / BURST_EVENTS_PER_SECOND)

    def set_probe(self, every: int) -> dict[str, Any]:
        """Every ``every``-th event of each venue becomes a latency probe (0: none)."""
        return self._call("POST", "/probe", {"every": every})

    def probes(self, since: int = 0) -> list[tuple[int, str, float]]:
        """Probes sent after key ``since``: (key, exchange, time.monotonic() when its frame went to the socket)."""
        return [(key, exchange, sent_at) for key, exchange, sent_at, _ in self.probe_records(since)]

    def probe_records(self, since: int = 0) -> list[tuple[int, str, float, float]]:
        """As :meth:`probes`, with the time each probe's event was queued (:meth:`ProbeLog.sent`)."""
        answer = self._call("GET", "/probes", params={"since": since})
        return [(key, exchange, sent_at, queued_at) for key, exchange, sent_at, queued_at in answer["probes"]]

    # -- faults ------------------------------------------------------------------------------------------

    def fault(self, name: str, **params: Any) -> dict[str, Any]:
        """A ``symbol=None`` parameter is left out (the fault then acts on the default symbol)."""
        return self._call("POST", f"/faults/{name}", {key: value for key, value in params.items()
                                                      if key != "symbol" or value is not None})

    def cross(self, symbol: str | None = None) -> dict[str, Any]:
        return self._call("POST", "/cross", {"symbol": symbol} if symbol is not None else None)

    def drop(self, exchange: str) -> dict[str, Any]:
        return self.fault("drop", exchange=exchange)

    def close(self, exchange: str, code: int = 1000, reason: str = "") -> dict[str, Any]:
        return self.fault("close", exchange=exchange, code=code, reason=reason)

    def gap(self, events: int = 5, symbol: str | None = None) -> dict[str, Any]:
        return self.fault("gap", exchange="binance", events=events, symbol=symbol)

    def stale_snapshot(self, count: int = 1, symbol: str | None = None) -> dict[str, Any]:
        return self.fault("stale_snapshot", exchange="binance", count=count, symbol=symbol)

    def server_shutdown(self, close_after: float = 1.0) -> dict[str, Any]:
        """``serverShutdown`` to every Binance connection, each closed ``close_after`` seconds later."""
        return self.fault("server_shutdown", exchange="binance", close_after=close_after)

    def request_reconnect(self, after: float = 3.0) -> dict[str, Any]:
        return self.fault("request_reconnect", exchange="bitstamp", after=after)

    def reorder(self, symbol: str | None = None) -> dict[str, Any]:
        return self.fault("reorder", exchange="bitstamp", symbol=symbol)

    def silence(self, exchange: str, on: bool = True) -> dict[str, Any]:
        return self.fault("silence", exchange=exchange, on=on)

    def rest(self, exchange: str, status: int | str, count: int = 1, retry_after: int = 30) -> dict[str, Any]:
        return self.fault("rest", exchange=exchange, status=str(status), count=count, retry_after=retry_after)

    def rest_lag(self, seconds: float, symbol: str | None = None) -> dict[str, Any]:
        """Bitstamp's REST book is the book as it was ``seconds`` ago from now on (0: current); ``{"lag": s}``."""
        return self.fault("rest_lag", exchange="bitstamp", seconds=float(seconds), symbol=symbol)

    def junk_rows(self, exchange: str, count: int = 1, symbol: str | None = None) -> dict[str, Any]:
        """The next ``count`` diffs carry a price-0 bid row (and, on Bitstamp, a trailing ``null`` bid row)."""
        return self.fault("junk_rows", exchange=exchange, count=count, symbol=symbol)

    def lose_change(self, exchange: str, side: str = "bid", index: int = 2,
                    symbol: str | None = None) -> dict[str, Any]:
        """Change the true book silently (no diff, no id); ``{"price", "amount", "side"}`` of the changed level."""
        return self.fault("lose_change", exchange=exchange, side=side, index=index, symbol=symbol)

    def sweep(self, exchange: str, side: str = "bid", levels: int = 20, symbol: str | None = None) -> dict[str, Any]:
        """One ordinary diff removing the best ``levels`` levels of ``side`` (a model-driven venue only)."""
        return self.fault("sweep", exchange=exchange, side=side, levels=levels, symbol=symbol)

    def malformed(self, exchange: str, kind: str, size: int | None = None,
                  symbol: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"exchange": exchange, "kind": kind, "symbol": symbol}
        if size is not None:
            params["size"] = size
        return self.fault("malformed", **params)


class SimulatorProcess:
    """``with SimulatorProcess("--rate", "2000") as sim: sim.urls["binance_ws"], sim.control.truth()``."""

    def __init__(self, *args: str, start_timeout: float = START_TIMEOUT, env: dict[str, str] | None = None) -> None:
        self.args = [str(arg) for arg in args]
        self.start_timeout = start_timeout
        self.env = env
        self.urls: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._control: SimulatorControl | None = None

    @property
    def control(self) -> SimulatorControl:
        if self._control is None:
            raise SimulatorError("simulator not started")
        return self._control

    @property
    def pid(self) -> int:
        """The simulator's process id (a benchmark reads its CPU time from /proc)."""
        if self._proc is None:
            raise SimulatorError("simulator not started")
        return self._proc.pid

    def send_signal(self, sig: int) -> None:
        if self._proc is None:
            raise SimulatorError("simulator not started")
        self._proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """The exit code, once the process has exited (subprocess.TimeoutExpired if it does not in time)."""
        if self._proc is None:
            raise SimulatorError("simulator not started")
        return self._proc.wait(timeout)

    def start(self) -> SimulatorProcess:
        self._proc = subprocess.Popen(
            [str(EXCHANGE_SIM), "--exit-with-parent", *self.args],  # never outlives the process that owns it
            stdout=subprocess.PIPE,
            env={**os.environ, **(self.env or {})},
        )
        line = self._read_line()
        try:
            self.urls = json.loads(line)
        except ValueError:
            self.stop()
            raise SimulatorError(f"exchange-sim printed {line!r} instead of its URLs") from None
        self._control = SimulatorControl(self.urls["control"])
        return self

    def _read_line(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + self.start_timeout
        selector = selectors.DefaultSelector()
        selector.register(self._proc.stdout, selectors.EVENT_READ)
        buffer = b""
        try:
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    self.stop()
                    raise SimulatorError(f"exchange-sim did not start within {self.start_timeout} s")
                chunk = os.read(self._proc.stdout.fileno(), 4096)
                if not chunk:
                    code = self._proc.wait()
                    raise SimulatorError(f"exchange-sim exited with code {code} before printing its URLs")
                buffer += chunk
        finally:
            selector.close()
        return buffer.split(b"\n", 1)[0].decode()

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self._control is not None:
            self._control.end_session()
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("exchange-sim %d ignored SIGTERM; killing it", proc.pid)  # the server's log format
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        return proc.returncode

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
