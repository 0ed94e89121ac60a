"""bin/bench in quick mode: it runs, and its JSON has every figure, positive, with the machine it ran on.

Timing targets are never asserted here (the machine is shared and noisy); only that the figures exist and are sane.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.e2e
def test_quick_ingest_and_latency_write_positive_figures(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [str(REPO_ROOT / "bin" / "bench"), "--quick", "--scenario", "ingest", "--scenario", "latency",
         "--json", str(out)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "ORDERBOOK_PYTHON": sys.executable},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "frames/s" in result.stdout and "send->receipt" in result.stdout
    document = json.loads(out.read_text())
    assert document["machine"]["cores"] == os.cpu_count()
    assert set(document["scenarios"]) == {"ingest", "latency"}
    for name, scenario in document["scenarios"].items():
        assert scenario["error"] is None, scenario["error"]
        assert scenario["cores"] == os.cpu_count() and scenario["python"].startswith("3.")
        assert scenario["repeat"] == 1 and scenario["figures"]
        for figure in scenario["figures"]:
            assert set(figure) >= {"name", "value", "unit", "target", "pass", "runs"}
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
