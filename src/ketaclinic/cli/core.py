"""Core commands: init, migrate, user, serve, demo, audit, docs."""

from __future__ import annotations

import getpass
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress

from ketaclinic.bootstrap import NotMigrated, Services, build_services
from ketaclinic.cli import app, environ, fail
from ketaclinic.cli.output import (
    EXIT_NOT_FOUND,
    EXIT_REFUSED,
    CliError,
    JsonFlag,
    emit,
    input_path,
    is_stdio,
    output_path,
)
from ketaclinic.config import Settings, SettingsError, describe_settings_error, load_settings
from ketaclinic.services.audit.trail import SYSTEM
from ketaclinic.store.db import DurabilityError, relax_sqlite_sync_for_bulk_seeding

console = Console()
user_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
audit_app = typer.Typer(help="Inspect the tamper-evident audit trail.", no_args_is_help=True)
docs_app = typer.Typer(help="Generate reference documentation.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(audit_app, name="audit")
app.add_typer(docs_app, name="docs")


def settings() -> Settings:
    try:
        return load_settings(environ())
    except ValidationError as exc:  # one line naming the variable: "KETACLINIC_PORT: …"
        raise fail(f"invalid configuration: {describe_settings_error(exc)}") from exc
    except ValueError as exc:
        raise fail(f"invalid configuration: {str(exc).splitlines()[0]}") from exc


def open_services(upgrade: bool = False) -> Services:
    try:
        return build_services(settings(), upgrade=upgrade)
    except (SettingsError, DurabilityError, NotMigrated) as exc:
        raise fail(str(exc), 1) from exc


@app.command()
def migrate(as_json: JsonFlag = False) -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    svc = open_services(upgrade=True)
    svc.close()
    emit({"schema": "up to date"}, as_json, lambda: console.print("database schema is up to date"))


@app.command()
def init(
    admin_username: Annotated[str, typer.Option(help="Username of the first admin")] = "admin",
    admin_name: Annotated[str, typer.Option(help="Full name of the first admin")] = "Administrator",
    admin_password: Annotated[str | None, typer.Option(
        help="Password (else KETACLINIC_ADMIN_PASSWORD, else asked)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create the schema and the first admin account."""
    svc = open_services(upgrade=True)
    try:
        if svc.auth.count_users() > 0:
            emit({"schema": "up to date", "admin_created": None}, as_json,
                 lambda: console.print("schema migrated; users already exist, no admin created"))
            return
        password = admin_password or environ().get("KETACLINIC_ADMIN_PASSWORD") or (
            getpass.getpass("Password for the first admin: "))
        user = svc.auth.create_user(SYSTEM, admin_username, admin_name, "admin", password)
    finally:
        svc.close()
    emit({"schema": "up to date", "admin_created": user.username}, as_json,
         lambda: console.print(f"created admin user {user.username!r}"))


@user_app.command("create")
def user_create(
    username: Annotated[str, typer.Argument(help="Login name")],
    role: Annotated[str, typer.Option(help="admin, prescriber, nurse or analyst")],
    full_name: Annotated[str, typer.Option(help="Full name")],
    password: Annotated[str | None, typer.Option(
        help="Password (else KETACLINIC_USER_PASSWORD, else asked)")] = None,
    medical_director: Annotated[bool, typer.Option(
        "--medical-director", help="May co-sign loosening a hard limit of a rule set")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create a user account."""
    svc = open_services()
    try:
        pw = password or environ().get("KETACLINIC_USER_PASSWORD") or getpass.getpass("Password: ")
        user = svc.auth.create_user(SYSTEM, username, full_name, role, pw,
                                    medical_director=medical_director)
    finally:
        svc.close()
    emit(_user_dict(user), as_json,
         lambda: console.print(f"created {user.role} {user.username!r}"
                               + (" (medical director)" if user.medical_director else "")))


def _user_dict(u) -> dict[str, object]:
    return {"username": u.username, "role": u.role, "active": bool(u.active),
            "medical_director": bool(u.medical_director)}


@user_app.command("list")
def user_list(as_json: JsonFlag = False) -> None:
    """List user accounts."""
    svc = open_services()
    try:
        users = svc.auth.list_users(SYSTEM)
    finally:
        svc.close()

    def human() -> None:
        for u in users:
            console.print(f"{u.username}\t{u.role}\t{'active' if u.active else 'deactivated'}"
                          + ("\tmedical director" if u.medical_director else ""))

    emit([_user_dict(u) for u in users], as_json, human)


@user_app.command("medical-director")
def user_medical_director(
    username: Annotated[str, typer.Argument(help="Login name")],
    off: Annotated[bool, typer.Option("--off", help="Clear the flag instead of setting it")]
    = False,
    as_json: JsonFlag = False,
) -> None:
    """Set (or with --off clear) the medical-director flag: a second person with it co-signs
    loosening or removing a hard limit of a rule set in effect."""
    svc = open_services()
    try:
        match = [u for u in svc.auth.list_users(SYSTEM) if u.username == username.strip().lower()]
        if not match:
            raise fail(f"no user named {username!r}", EXIT_NOT_FOUND)
        user = svc.auth.set_medical_director(SYSTEM, match[0].id, not off)
    finally:
        svc.close()
    flag = "yes" if user.medical_director else "no"
    emit(_user_dict(user), as_json,
         lambda: console.print(f"{user.username}: medical director {flag}"))


@user_app.command("reset-password")
def user_reset_password(
    username: Annotated[str, typer.Argument(help="Login name")],
    as_json: JsonFlag = False,
) -> None:
    """Give USERNAME a one-time temporary password (printed once); they must change it at the
    next login. Ends their sessions. For a locked-out admin as well."""
    svc = open_services()
    try:
        reset = svc.accounts.reset_password(SYSTEM, svc.accounts.user_id_for(SYSTEM, username))
    finally:
        svc.close()

    def human() -> None:
        console.print(f"temporary password for {reset.user.username!r} (shown once, valid until "
                      f"{reset.expires_at:%Y-%m-%d %H:%M} UTC):")
        typer.echo(reset.generated)

    emit({"username": reset.user.username, "temporary_password": reset.generated,
          "expires_at": reset.expires_at}, as_json, human)


@user_app.command("reset-2fa")
def user_reset_2fa(
    username: Annotated[str, typer.Argument(help="Login name")],
    as_json: JsonFlag = False,
) -> None:
    """Turn two-factor login off for USERNAME (lost phone); they enrol again at the next login.
    Ends their sessions and deletes their recovery codes."""
    svc = open_services()
    try:
        user = svc.accounts.reset_two_factor(SYSTEM, svc.accounts.user_id_for(SYSTEM, username))
    finally:
        svc.close()
    emit({"username": user.username, "two_factor": "reset"}, as_json,
         lambda: console.print(f"two-factor login of {user.username!r} was reset"))


@user_app.command("encrypt-secrets")
def user_encrypt_secrets(as_json: JsonFlag = False) -> None:
    """Encrypt two-factor keys and webhook signing secrets stored in plaintext (AES-256-GCM,
    key derived from KETACLINIC_SECRET_KEY). After changing the secret key, set
    KETACLINIC_PREVIOUS_SECRET_KEY to the old one to re-encrypt them under the new one. Exits 1
    if a key or secret stays unreadable.
    """
    previous = environ().get("KETACLINIC_PREVIOUS_SECRET_KEY")
    svc = open_services()
    try:
        report = svc.accounts.encrypt_secrets(previous)
        hooks = svc.webhooks.encrypt_secrets(previous)
    finally:
        svc.close()
    unreadable = sorted(set(report.unreadable))
    problems = ([f"unreadable two-factor keys (reset their two-factor login with `ketaclinic "
                 f"user reset-2fa`): {', '.join(unreadable)}"] if unreadable else []) + (
        [f"unreadable webhook secrets (remove and re-add those endpoints with `ketaclinic "
         f"webhooks`): {', '.join(hooks.unreadable)}"] if hooks.unreadable else [])
    problem = CliError("; ".join(problems), EXIT_REFUSED) if problems else None

    def counts(r) -> str:
        return f"{r.encrypted} encrypted, {r.reencrypted} re-encrypted, {r.current} already current"

    emit({"encrypted": report.encrypted, "reencrypted": report.reencrypted,
          "current": report.current, "unreadable": unreadable,
          "webhooks": {"encrypted": hooks.encrypted, "reencrypted": hooks.reencrypted,
                       "current": hooks.current,
                       "unreadable": [int(i) for i in hooks.unreadable]}}, as_json,
         lambda: console.print(f"two-factor keys: {counts(report)}\n"
                               f"webhook secrets: {counts(hooks)}"),
         error=problem)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes")] = None,
) -> None:
    """Start the web server (the schema must be migrated: `ketaclinic init`)."""
    import os

    import uvicorn

    cfg = settings()
    open_services().close()  # refuse early: placeholder secret, weak durability, old schema
    os.environ.update({k: v for k, v in environ().items() if k.startswith("KETACLINIC_")})
    if (workers or cfg.workers) > 1:
        _multiprocess_metrics(cfg)
    url = f"http://{host or cfg.host}:{port or cfg.port}"
    console.print(f"ketaclinic listening on {url}  (Ctrl+C stops)")
    uvicorn.run("ketaclinic.web.asgi:app_factory", factory=True, host=host or cfg.host,
                port=port or cfg.port, workers=workers or cfg.workers, log_level="warning",
                access_log=False, timeout_keep_alive=cfg.keep_alive_seconds,
                # Forwarded headers are read by the app, from KETACLINIC_TRUSTED_PROXIES only
                # (uvicorn would otherwise believe them from any local client).
                proxy_headers=False, forwarded_allow_ips="")


def _multiprocess_metrics(cfg: Settings) -> None:
    """Several workers: each writes its counters to a fresh folder that /metrics adds up."""
    import os
    import shutil

    from ketaclinic.store.private import private_dir

    folder = cfg.data_dir / "prometheus-multiproc"
    shutil.rmtree(folder, ignore_errors=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(private_dir(folder).resolve())


@app.command()
def demo(
    patients: Annotated[int, typer.Option(min=1, max=100_000, help="How many patients")] = 220,
    if_empty: Annotated[bool, typer.Option(
        "--if-empty", help="Seed only when the database has no users yet")] = False,
    seed: Annotated[int, typer.Option(help="Random seed")] = 2026,
    as_json: JsonFlag = False,
) -> None:
    """Seed a synthetic demo clinic (dev mode only) and print the demo logins."""
    from ketaclinic.demo.clinic import DEMO_USERS, seed_demo

    cfg = settings()
    if cfg.env != "dev":
        raise fail("demo data is only seeded with KETACLINIC_ENV=dev", 1)
    svc = open_services(upgrade=True)
    seeded = 0
    try:
        if if_empty and svc.auth.count_users() > 0:
            if not as_json:
                console.print("demo data already present; not seeding again")
        else:
            relax_sqlite_sync_for_bulk_seeding(svc.db.engine)
            bar_console = Console(stderr=True) if as_json else console
            with Progress(console=bar_console, transient=False) as bar:
                task = bar.add_task("seeding synthetic patients", total=patients)
                seed_demo(svc, patients=patients, seed=seed,
                          progress=lambda n: bar.advance(task, n))
            seeded = patients
    finally:
        svc.close()

    def human() -> None:
        console.print("\nDemo logins (synthetic data only):")
        for username, _name, role, password in DEMO_USERS:
            console.print(
                f"  {role:<11} username [bold]{username}[/]  password [bold]{password}[/]"
            )

    emit({"seeded_patients": seeded, "logins": [
        {"role": role, "username": username, "password": password}
        for username, _name, role, password in DEMO_USERS]}, as_json, human)


@audit_app.command("verify")
def audit_verify(
    checkpoint: Annotated[list[Path] | None, typer.Option(
        "--checkpoint", help="Also compare with this checkpoint file (e.g. an off-site copy); "
        "repeatable; - reads it from stdin")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Verify the hash chain against the latest checkpoint of the data dir (and any given);
    exits 1 and names the first bad row, or the truncated or rewritten chain."""
    svc = open_services()
    try:
        with ExitStack() as stack:
            files = [stack.enter_context(input_path(f)) for f in checkpoint or []]
            result = svc.audit_log.verify(checkpoint_files=files)
    finally:
        svc.close()
    broken = None if result.ok else CliError(result.describe(), EXIT_REFUSED, "check_failed")
    emit({"ok": result.ok, "checked": result.checked, "first_bad_id": result.first_bad_id,
          "reason": result.reason, "compared": list(result.compared),
          "message": result.describe()}, as_json,
         None if broken else lambda: console.print(result.describe()), error=broken)


@audit_app.command("checkpoint")
def audit_checkpoint(
    out: Annotated[Path | None, typer.Option(
        "--out", help="Also write the checkpoint to this file (for an off-site copy); - writes "
        "it to stdout")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Sign the chain tips into the data dir's checkpoint file (run it from cron; `verify`
    then detects rows removed or rewritten before it). The summary goes to stderr when the
    checkpoint itself goes to stdout (--out -)."""
    svc = open_services()
    try:
        with ExitStack() as stack:
            target = stack.enter_context(output_path(out)) if out is not None else None
            cp = svc.audit_log.checkpoint(target)
        where = svc.audit_log.checkpoint_file()
    except OSError as exc:
        raise fail(f"cannot write the checkpoint: {exc.strerror}", 1) from exc
    finally:
        svc.close()
    extra = (" and stdout" if is_stdio(out) else f" and {out}") if out else ""
    emit({"rows": cp.rows, "chains": len(cp.marks), "taken_at": cp.taken_at, "file": where,
          "out": out}, as_json,
         f"checkpoint of {cp.rows} audit rows in {len(cp.marks)} chain(s) written to "
         f"{where}{extra}", err=is_stdio(out))


@docs_app.command("cli")
def docs_cli() -> None:
    """Print the CLI reference in Markdown (docs/cli.md is generated from this)."""
    from ketaclinic.cli.reference import render_reference

    typer.echo(render_reference(), nl=False)


@docs_app.command("settings")
def docs_settings() -> None:
    """Print the configuration reference in Markdown."""
    from ketaclinic.cli.reference import render_settings

    typer.echo(render_settings(), nl=False)
