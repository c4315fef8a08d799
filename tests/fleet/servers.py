"""Debian's Prometheus and Alertmanager, started for one test with the shipped contrib/ files.

Each listens on a free loopback port and keeps its files under the test's directory. What a
test must not wait for in real time is shortened here: 1 s scrapes and evaluations, every
`for:` of the shipped rules at 1 s, Alertmanager's group waits and intervals at 1 s. Nothing
else in the shipped files changes.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from devtools.net import free_port
from tests.fleet.contrib import ALERTMANAGER_CONFIG, PROMETHEUS_CONFIG, RULES, load_yaml

_FAST = "1s"


class Server:
    """One daemon process of ours: started, asked over HTTP, stopped."""

    name = "server"

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        self.log = root / f"{self.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self, binary: str) -> list[str]:
        raise NotImplementedError

    def start(self, binary: str) -> None:
        cmd = self.command(binary)
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def ready(self) -> bool:
        """True once it answers /-/ready; an exited process fails the test with its log."""
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise AssertionError(f"{self.name} exited:\n{self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as resp:
            return json.loads(resp.read())


class Prometheus(Server):
    """prometheus with contrib/prometheus/prometheus.yml and rules.yml."""

    name = "prometheus"

    def __init__(self, root: Path, alertmanager: str | None = None) -> None:
        super().__init__(root)
        self.targets = root / "targets"
        self._alertmanager = alertmanager

    def command(self, binary: str) -> list[str]:
        self.targets.mkdir(exist_ok=True)
        return [
            binary,
            f"--config.file={self._write_config()}",
            f"--storage.tsdb.path={self.root / 'data'}",
            f"--web.listen-address={self.address}",
        ]

    def _write_config(self) -> Path:
        fast = load_yaml(RULES)
        for group in fast["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = _FAST
        rules = self.root / "rules.yml"
        rules.write_text(yaml.safe_dump(fast, sort_keys=False))
        conf = load_yaml(PROMETHEUS_CONFIG)
        conf["global"] = {"scrape_interval": _FAST, "evaluation_interval": _FAST}
        if self._alertmanager is None:
            del conf["alerting"]
        else:
            (sender,) = conf["alerting"]["alertmanagers"]
            sender["static_configs"] = [{"targets": [self._alertmanager]}]
        conf["rule_files"] = [str(rules)]
        (job,) = conf["scrape_configs"]
        job.update(scrape_interval=_FAST, scrape_timeout=_FAST)
        job["file_sd_configs"] = [
            {"files": [str(self.targets / "*.yml")], "refresh_interval": _FAST}
        ]
        path = self.root / "prometheus.yml"
        path.write_text(yaml.safe_dump(conf, sort_keys=False))
        return path

    def discover(self, port: int, host: str) -> None:
        """File-based discovery: one box, written whole (Prometheus watches the directory)."""
        entry = [{"targets": [f"127.0.0.1:{port}"], "labels": {"host": host}}]
        tmp = self.root / "box.yml.tmp"
        tmp.write_text(yaml.safe_dump(entry))
        tmp.rename(self.targets / "box.yml")

    def api(self, path: str, **params: str) -> Any:
        body = self.get(f"/api/v1/{path}", **params)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def alerts(self, name: str, **labels: str) -> list[dict[str, Any]]:
        """Active (pending or firing) alerts of that name whose labels include `labels`."""
        return [
            a
            for a in self.api("alerts")["alerts"]
            if a["labels"]["alertname"] == name and labels.items() <= a["labels"].items()
        ]


class Alertmanager(Server):
    """prometheus-alertmanager with contrib/alertmanager/alertmanager.yml, its Telegram
    receiver pointed at a fake Bot API; no cluster port."""

    name = "alertmanager"

    def __init__(self, root: Path, telegram_url: str, token: str) -> None:
        super().__init__(root)
        self._telegram_url = telegram_url
        self._token = token

    def command(self, binary: str) -> list[str]:
        return [
            binary,
            f"--config.file={self._write_config()}",
            f"--storage.path={self.root / 'data'}",
            f"--web.listen-address={self.address}",
            "--cluster.listen-address=",
        ]

    def _write_config(self) -> Path:
        conf = load_yaml(ALERTMANAGER_CONFIG)
        routes = [conf["route"], *conf["route"]["routes"]]
        for route in routes:
            for key in ("group_wait", "group_interval"):
                if key in route or route is conf["route"]:
                    route[key] = _FAST
        for receiver in conf["receivers"]:
            for telegram in receiver.get("telegram_configs", []):
                telegram.update(api_url=self._telegram_url, bot_token=self._token)
        path = self.root / "alertmanager.yml"
        path.write_text(yaml.safe_dump(conf, sort_keys=False, allow_unicode=True))
        return path

    def alerts(self, name: str) -> list[dict[str, Any]]:
        """Alertmanager's alerts of that name, with their receivers and state."""
        found: list[dict[str, Any]] = self.get("/api/v2/alerts", filter=f'alertname="{name}"')
        return found
