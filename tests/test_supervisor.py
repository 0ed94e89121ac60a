"""The supervisor (orderbook/supervision.py) in process: restarts, counts, health, and giving up."""

from __future__ import annotations

import gevent
import pytest

from orderbook.supervision import Supervisor
from tests.support.waiting import wait_until


class Rig:
    def __init__(self, **kwargs) -> None:
        self.gave_up: list[str] = []
        self.health_changes = 0
        self.supervisor = Supervisor(self.gave_up.append, restart_base=0.01, restart_cap=0.02, **kwargs)
        self.supervisor.on_health = self._health_changed

    def _health_changed(self) -> None:
        self.health_changes += 1

    def wait(self, probe, what: str):
        return wait_until(probe, 5.0, what, interval=0.005, sleep=gevent.sleep)


@pytest.fixture
def rig():
    rigs: list[Rig] = []

    def make(**kwargs) -> Rig:
        rigs.append(Rig(**kwargs))
        return rigs[-1]

    yield make
    for made in rigs:
        made.supervisor.kill()


def test_a_task_that_raises_is_started_again_and_counted(rig, caplog):
    rig = rig()
    runs: list[int] = []

    def task() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("boom")
        gevent.sleep(60)

    rig.supervisor.task("reader", task)
    rig.wait(lambda: len(runs) == 3, "a third run")
    assert rig.supervisor.failures["reader"] == 2
    assert rig.supervisor.healthy and rig.supervisor.down == [] and rig.gave_up == []
    assert caplog.text.count("task reader failed; starting it again") == 2
    assert "RuntimeError: boom" in caplog.text
    families = {family.name: family for family in rig.supervisor.families()}
    assert [(s.labels, s.value) for s in families["orderbook_task_failures"].samples] == [({"task": "reader"}, 2)]
    assert [(s.labels, s.value) for s in families["orderbook_task_up"].samples] == [({"task": "reader"}, 1)]


def test_health_is_down_while_a_needed_task_waits_to_start_again(rig):
    rig = rig()
    rig.supervisor = Supervisor(rig.gave_up.append, restart_base=0.3, restart_cap=0.3)
    rig.supervisor.on_health = rig._health_changed
    rig.supervisor.task("optional", lambda: 1 / 0, needed=False)
    rig.wait(lambda: rig.supervisor.down == ["optional"], "the optional task down")
    assert rig.supervisor.healthy
    rig.supervisor.task("election", lambda: 1 / 0)
    rig.wait(lambda: "election" in rig.supervisor.down, "the needed task down")
    assert not rig.supervisor.healthy and rig.health_changes >= 2
    rig.supervisor.kill()


def test_a_task_that_returns_has_finished(rig):
    rig = rig()
    runs: list[int] = []
    rig.supervisor.task("listing", runs.append, 1)
    rig.wait(lambda: len(rig.supervisor) == 0, "the task done")
    gevent.sleep(0.05)
    assert runs == [1] and rig.supervisor.healthy and rig.supervisor.failures == {}
    assert [family.samples for family in rig.supervisor.families()] == [[], []], "nothing left to watch"


def test_a_helper_that_raises_is_logged_and_counted_by_its_name_never_restarted(rig, caplog):
    rig = rig()

    def load_snapshot() -> None:
        raise ValueError("bad")

    rig.supervisor.spawn(load_snapshot).join()
    assert rig.supervisor.failures == {"test_a_helper_that_raises_is_logged_and_counted_by_its_name_never_restarted."
                                       "<locals>.load_snapshot": 1}
    assert "ValueError: bad" in caplog.text and rig.supervisor.healthy


def test_more_failures_than_the_restart_intensity_give_up_once(rig):
    rig = rig(max_failures=5, window=60.0)
    rig.supervisor.task("publisher", lambda: 1 / 0)
    rig.wait(lambda: rig.gave_up, "given up")
    gevent.sleep(0.1)
    assert len(rig.gave_up) == 1 and "6 task failures within 60 s (the last in publisher)" in rig.gave_up[0]
    assert rig.supervisor.failures["publisher"] == 6 and not rig.supervisor.healthy
    assert len(rig.supervisor) == 0, "the failing task is not started again"


def test_failures_spread_wider_than_the_window_never_give_up(rig):
    rig = rig(max_failures=2, window=0.05)
    runs: list[int] = []

    def task() -> None:
        runs.append(1)
        gevent.sleep(0.03)
        raise RuntimeError("now and then")

    rig.supervisor.task("audits", task)
    rig.wait(lambda: len(runs) >= 8, "eight runs")
    assert rig.gave_up == []


def test_a_task_name_is_one_task():
    supervisor = Supervisor(lambda reason: None)
    supervisor.task("reader", gevent.sleep, 1)
    with pytest.raises(ValueError, match="already supervised"):
        supervisor.task("reader", gevent.sleep, 1)
    supervisor.kill()
