"""A venue's REST session takes the proxies and the CA bundle from the environment once, as requests would have
picked them for the venue's host, and never reads the environment again."""

from __future__ import annotations

import pytest

from orderbook.rest import venue_session

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                   "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@pytest.fixture
def environment(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_no_proxy_and_the_default_bundle_without_the_variables(environment):
    session = venue_session("https://api.binance.com")
    assert session.proxies == {} and session.verify is True and not session.trust_env


def test_the_proxies_of_the_environment(environment):
    environment.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    environment.setenv("HTTP_PROXY", "http://proxy.internal:3129")
    session = venue_session("https://www.bitstamp.net")
    assert session.proxies["https"] == "http://proxy.internal:3128"
    assert session.proxies["http"] == "http://proxy.internal:3129"


@pytest.mark.parametrize("no_proxy", ["api.binance.com", ".binance.com", "binance.com,localhost", "*"])
def test_a_host_named_in_no_proxy_goes_direct(environment, no_proxy):
    environment.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    environment.setenv("NO_PROXY", no_proxy)
    assert venue_session("https://api.binance.com").proxies == {}


def test_the_ca_bundle_of_the_environment_requests_first(environment):
    environment.setenv("CURL_CA_BUNDLE", "/etc/ssl/curl.pem")
    assert venue_session("https://api.binance.com").verify == "/etc/ssl/curl.pem"
    environment.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/requests.pem")
    assert venue_session("https://api.binance.com").verify == "/etc/ssl/requests.pem"


def test_the_environment_is_read_once(environment):
    session = venue_session("https://api.binance.com")
    environment.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    settings = session.merge_environment_settings("https://api.binance.com/api/v3/depth", {}, None, None, None)
    assert settings["proxies"] == {} and settings["verify"] is True
