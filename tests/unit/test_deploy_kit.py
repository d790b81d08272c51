"""deploy/ stays sane without docker: a non-root image with a health check, a compose file
with PostgreSQL and Caddy, systemd units that run commands the CLI has, an nginx example that
forwards the headers the trusted-proxy setting reads."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import typer

from ketaclinic.cli import _register, app
from ketaclinic.config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", dockerfile)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_the_image_is_multi_stage_and_runs_as_a_non_root_user_with_a_health_check():
    steps = _instructions((DEPLOY / "Dockerfile").read_text())
    assert len([s for s in steps if s[0] == "FROM"]) >= 2
    runtime = steps[max(i for i, s in enumerate(steps) if s[0] == "FROM"):]
    users = [rest for word, rest in runtime if word == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    health = [rest for word, rest in runtime if word == "HEALTHCHECK"]
    assert health and "/healthz" in health[0]
    assert any(w == "COPY" and "--from=build" in r and "/wheels" in r for w, r in runtime)
    assert not any(w == "RUN" and re.search(r"\bgcc\b|build-essential", r) for w, r in runtime)


def test_the_compose_file_runs_the_app_postgresql_and_caddy_with_secrets_from_an_env_file():
    compose = (DEPLOY / "compose.yaml").read_text()
    for service in ("db:", "ketaclinic:", "caddy:", "outbox:"):
        assert f"\n  {service}" in compose
    assert "env_file: .env" in compose and "image: postgres:" in compose
    assert "image: caddy:" in compose and "healthcheck:" in compose
    assert "KETACLINIC_TRUSTED_PROXIES" in compose
    assert "KETACLINIC_SECRET_KEY=" not in compose  # secrets live in .env, not here
    caddy_ip = re.search(r"caddy:.*?ipv4_address: (\S+)", compose, re.S)
    assert caddy_ip and f"KETACLINIC_TRUSTED_PROXIES: {caddy_ip.group(1)}" in compose
    assert "{$KETACLINIC_DOMAIN}" in (DEPLOY / "Caddyfile").read_text()


def _cli():  # type: ignore[no-untyped-def]
    _register()
    return typer.main.get_command(app)


def _resolves(words: list[str]):  # type: ignore[no-untyped-def]
    """The command the words name; groups are duck-typed (Typer ships its own click)."""
    cmd = _cli()
    for word in words:
        if word not in getattr(cmd, "commands", {}):
            return None
        cmd = cmd.commands[word]
    return cmd


def test_every_systemd_unit_runs_a_command_the_cli_has():
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {u.name for u in units} >= {"ketaclinic.service", "ketaclinic-outbox.service"}
    for unit in units:
        lines = [ln for ln in unit.read_text().splitlines() if ln.startswith("ExecStart=")]
        assert lines, unit.name
        argv = shlex.split(lines[0].removeprefix("ExecStart="))
        assert argv[0].endswith("/ketaclinic"), unit.name
        words = [a for a in argv[1:] if not a.startswith("-")]
        options = [a.split("=")[0] for a in argv[1:] if a.startswith("--")]
        words = words[:len(words) - sum(1 for _ in options)] if options else words
        cmd = _resolves(words)
        assert cmd is not None and not hasattr(cmd, "commands"), (unit.name, words)
        known = {o for p in cmd.params for o in p.opts}
        assert set(options) <= known, (unit.name, options)
    assert (DEPLOY / "systemd" / "ketaclinic-outbox.timer").exists()
    # Expired $export files are deleted on a schedule, not only when the next export starts.
    assert (DEPLOY / "systemd" / "ketaclinic-export-expire.timer").exists()
    assert "ketaclinic export expire" in (DEPLOY / "compose.yaml").read_text()


def test_a_made_up_unit_command_would_be_caught():
    assert _resolves(["outbox", "send"]) is not None
    assert _resolves(["outbox", "flush"]) is None


def test_the_nginx_example_forwards_what_the_trusted_proxy_setting_reads():
    conf = (DEPLOY / "nginx" / "ketaclinic.conf").read_text()
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in conf
    assert "X-Forwarded-Proto $scheme" in conf
    assert "KETACLINIC_TRUSTED_PROXIES" in conf and "trusted_proxies" in Settings.model_fields


def test_the_env_example_names_only_real_settings():
    names = re.findall(r"^(KETACLINIC_[A-Z_]+)=", (DEPLOY / "env.example").read_text(), re.M)
    known = {f"KETACLINIC_{n.upper()}" for n in Settings.model_fields} | {"KETACLINIC_DOMAIN"}
    assert names and set(names) <= known
