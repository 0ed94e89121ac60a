"""The relay's clocks bound each other (orderbook/relay/timing.py)."""

from orderbook.relay import timing


def test_an_edge_keeps_its_streams_through_a_takeover() -> None:
    takeover = timing.LEASE_TTL + timing.TICK  # the lease lapses, then the standby's next attempt
    assert takeover + timing.HEARTBEAT_INTERVAL < timing.SOURCE_TIMEOUT


def test_a_leader_renews_several_times_a_lease_and_no_redis_call_outlasts_it() -> None:
    assert 4 * timing.TICK <= timing.LEASE_TTL
    assert timing.REDIS_TIMEOUT < timing.LEASE_TTL


def test_the_catalogue_outlives_a_missed_heartbeat_or_two_but_not_the_source_timeout() -> None:
    assert 2 * timing.HEARTBEAT_INTERVAL < timing.CATALOG_TTL < timing.SOURCE_TIMEOUT


def test_an_edge_gives_up_a_silent_epoch_before_its_streams_would_end_and_no_leader_is_silent_that_long() -> None:
    """The real leader's next heartbeat after the bound brings the edge back before the source timeout; a leader
    silent for the bound has lost its lease to a newer epoch already."""
    assert timing.FOLLOWED_SILENCE + timing.HEARTBEAT_INTERVAL < timing.SOURCE_TIMEOUT
    assert timing.LEASE_TTL + timing.TICK < timing.FOLLOWED_SILENCE


def test_a_redis_back_is_found_again_well_within_the_lease_and_the_source_timeout() -> None:
    assert timing.TICK <= timing.REDIS_RETRY_CAP < timing.LEASE_TTL < timing.SOURCE_TIMEOUT
