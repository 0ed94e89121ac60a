"""monitoring/README.md's commands work as written, from the directory it says (the repository root).

The commands are read from the README itself, so a test fails when the text and the files drift apart: Prometheus
is run with the documented flags from the repository root (only its storage and listen address are moved to
private ones), and the Grafana provisioning files are read the way Grafana reads them, with ``${VAR}`` expanded
from the environment each documented command sets. Grafana itself is not installed here (it is not in Debian's
archive), so the expansion follows Grafana's rule: ``os.ExpandEnv`` on every string value, ``$$`` for a literal
``$``, unset variables empty (pkg/services/provisioning/values in Grafana's source).
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from prom_tools import MONITORING, REPO, exited, start_prometheus

from tests.support.processes import stop_process
from tests.support.waiting import wait_until

README = MONITORING / "README.md"
DASHBOARD = MONITORING / "grafana" / "dashboard.json"
PROVISIONING = MONITORING / "grafana" / "provisioning"
GO_VARIABLE = re.compile(r"\$(?:\{([^}]*)\}|(\w+))")
ASSIGNMENT = re.compile(r"^([A-Za-z_]\w*)=(.*)$")


def readme_commands() -> list[list[str]]:
    """Every command in the README's indented code blocks, continuation lines joined, split as the shell would
    (``$PWD`` is the repository root: the README says to run everything from there)."""
    commands, current = [], ""
    for line in README.read_text().splitlines():
        if not line.startswith("    "):
            continue
        current += line.strip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        commands.append([word.replace("$PWD", str(REPO)) for word in shlex.split(current)])
        current = ""
    return commands


def documented(program: str) -> tuple[dict[str, str], list[str]]:
    """The one documented command running ``program``: (its leading VAR=value assignments, its words)."""
    found = []
    for words in readme_commands():
        env = {}
        while words and (match := ASSIGNMENT.match(words[0])):
            env[match.group(1)] = match.group(2)
            words = words[1:]
        if words and words[0] == program:
            found.append((env, words))
    assert len(found) == 1, f"expected one `{program}` command in {README}, found {len(found)}"
    return found[0]


def option(words: list[str], name: str) -> str:
    values = [word.split("=", 1)[1] for word in words if word.startswith(f"{name}=")]
    assert len(values) == 1, f"{name}= once in {words}"
    return values[0]


def grafana_expand(value: str, env: dict[str, str]) -> str:
    return "$".join(GO_VARIABLE.sub(lambda m: env.get(m.group(1) or m.group(2), ""), part)
                    for part in value.split("$$"))


def load_yaml(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict) and document.get("apiVersion") == 1, path
    return document


def provider_path(provisioning: Path, env: dict[str, str]) -> Path:
    """Where Grafana, given ``provisioning`` as its provisioning path and ``env``, looks for dashboards."""
    providers = load_yaml(provisioning / "dashboards" / "orderbook.yml")["providers"]
    assert [provider["type"] for provider in providers] == ["file"]
    path = grafana_expand(providers[0]["options"]["path"], env)
    assert Path(path).is_absolute(), f"{path!r}: Grafana would resolve it against its own working directory"
    return Path(path)


# -- Prometheus ---------------------------------------------------------------------------------------------------


def test_readme_runs_prometheus_from_the_repository_root_as_the_config_file_says() -> None:
    _, words = documented("prometheus")
    assert "All commands below run from the repository root" in README.read_text()
    assert f"#   {shlex.join(words)}" in (MONITORING / "prometheus.yml").read_text()
    assert (REPO / option(words, "--config.file")).resolve() == (MONITORING / "prometheus.yml").resolve()


def test_documented_config_passes_promtool_from_the_root_and_from_anywhere(promtool_bin: str, tmp_path: Path) -> None:
    """rule_files are relative to the config file's directory, as the README says, not to the working directory."""
    config = option(documented("prometheus")[1], "--config.file")
    for cwd, path in ((REPO, config), (tmp_path, str(REPO / config))):
        result = subprocess.run([promtool_bin, "check", "config", path], cwd=cwd, capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 0, f"from {cwd}: {result.stdout}{result.stderr}"
        assert "SUCCESS: 1 rule files found" in result.stdout


def test_documented_prometheus_command_starts_with_the_alert_rules(prometheus_bin: str, tmp_path: Path) -> None:
    _, words = documented("prometheus")
    args = [f"--storage.tsdb.path={tmp_path / 'data'}" if word.startswith("--storage.tsdb.path=") else word
            for word in words[1:]]
    log_path = tmp_path / "prometheus.log"
    process, api = start_prometheus(prometheus_bin, args, log_path, cwd=REPO)
    try:
        def rules_loaded() -> list[dict[str, Any]] | None:
            if process.poll() is not None:
                raise exited(process, log_path)
            try:
                return api.get("/api/v1/rules")["groups"]
            except OSError:
                return None

        groups = wait_until(rules_loaded, 20, "prometheus to serve its rules", interval=0.25)
        assert {Path(group["file"]).resolve() for group in groups} == {(MONITORING / "alerts.yml").resolve()}
        def jobs() -> set[str]:
            return {target["labels"]["job"] for target in api.targets()}

        wait_until(jobs, 10, "the book nodes' and the edges' scrape targets to be discovered", interval=0.25,
                   accept=lambda found: found == {"orderbook", "orderbook-edge"})
    finally:
        stop_process(process)


# -- Grafana ------------------------------------------------------------------------------------------------------


def test_provisioning_files_are_grafana_yaml_for_the_documented_prometheus() -> None:
    sources = load_yaml(PROVISIONING / "datasources" / "orderbook.yml")["datasources"]
    assert [(source["type"], source["url"]) for source in sources] == [("prometheus", "http://127.0.0.1:9090")]
    scrape = yaml.safe_load((MONITORING / "prometheus.yml").read_text())["global"]["scrape_interval"]
    assert sources[0]["jsonData"]["timeInterval"] == scrape
    load_yaml(PROVISIONING / "dashboards" / "orderbook.yml")


def test_native_grafana_command_provisions_the_dashboard() -> None:
    env, words = documented("grafana")
    assert words[1] == "server" and "--homepath" in words
    provisioning = Path(env["GF_PATHS_PROVISIONING"])
    assert provisioning.resolve() == PROVISIONING.resolve()
    path = provider_path(provisioning, env)
    # Grafana's file provider loads every .json file under its path, subdirectories included.
    assert [found.resolve() for found in path.rglob("*.json")] == [DASHBOARD.resolve()]
    assert env.get("GF_SERVER_HTTP_ADDR") == "127.0.0.1"  # loopback, as the service's own defaults


def test_docker_grafana_command_provisions_the_dashboard() -> None:
    _, words = documented("docker")
    env, mounts = {}, {}
    for flag, value in zip(words, words[1:]):
        if flag == "-e":
            name, _, setting = value.partition("=")
            env[name] = setting
        elif flag == "-v":
            host, container = value.split(":")[:2]
            mounts[container] = Path(host)

    def on_host(container_path: str) -> Path:
        for container, host in mounts.items():
            if container_path == container or container_path.startswith(container + "/"):
                return host / container_path[len(container):].lstrip("/")
        raise AssertionError(f"{container_path} is not mounted from the host: {mounts}")

    provisioning = on_host(env["GF_PATHS_PROVISIONING"])
    assert provisioning.resolve() == PROVISIONING.resolve()
    path = on_host(str(provider_path(provisioning, env)))
    assert [found.resolve() for found in path.rglob("*.json")] == [DASHBOARD.resolve()]


@pytest.mark.parametrize("env", [{}, {"ORDERBOOK_MONITORING": ""}])
def test_without_the_variable_the_provider_loads_nothing_rather_than_grafanas_own_files(env: dict[str, str]) -> None:
    """An empty path would be Grafana's working directory (its home, full of JSON files): it must not be."""
    path = provider_path(PROVISIONING, env)
    assert path != Path("/") and not path.exists()
