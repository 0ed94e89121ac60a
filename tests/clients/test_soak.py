"""The soak itself, tested: ``bin/soak`` for about 30 s must find no divergence, no crash and no growth."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.tiers import one_at_a_time

pytestmark = pytest.mark.usefixtures("starts_processes")  # bin/soak

SOAK = Path(__file__).resolve().parents[2] / "bin" / "soak"
CLIENTS = 20
MEMORY_GROWTH_BOUND_MB = 30
PEAK_BOUND_MB = 50


@one_at_a_time
def test_a_30_second_soak_finds_no_divergence_crash_or_growth(tmp_path):
    report_path = tmp_path / "soak.json"
    run = subprocess.run(
        [str(SOAK), "--minutes", "0.5", "--clients", str(CLIENTS), "--fault-every", "2", "--check-every", "10",
         "--seed", "3", "--json", str(report_path), "--workdir", str(tmp_path)],
        check=False, capture_output=True, text=True, timeout=240,
    )
    print(run.stdout)
    report = json.loads(report_path.read_text())
    assert not report["crashed"] and report["server_exit_code"] == 0, run.stderr[-3000:]
    assert report["tracebacks"] == 0
    assert report["faults_total"] >= 6
    assert sum(report["rebuilds"].values()) >= 1  # the faults did bite
    assert len(report["checks"]) >= 3
    assert all(check["matched_after"] is not None for check in report["checks"]), report["checks"]
    assert report["divergence_beyond_bound_s"] == 0, report["checks"]
    assert report["rss_final_mb"] - report["rss_start_mb"] < MEMORY_GROWTH_BOUND_MB
    assert report["rss_peak_mb"] - report["rss_start_mb"] < PEAK_BOUND_MB
    assert report["greenlets_end"] <= report["greenlets_start"] + 10
    assert report["fds_end"] <= report["fds_start"] + 5
    assert report["open_streams_end"] == CLIENTS + 1
    assert report["clients_alive"]
    assert report["ok"] and run.returncode == 0, run.stderr[-3000:]
