"""Machine access: service accounts and their API tokens (the operator, as SYSTEM)."""

from __future__ import annotations

from typing import Annotated

import typer

from ketaclinic.cli import app
from ketaclinic.cli.core import console, open_services
from ketaclinic.cli.output import JsonFlag, emit
from ketaclinic.services.accounts.permissions import SCOPES
from ketaclinic.services.audit.trail import SYSTEM

service_account_app = typer.Typer(help="Manage service accounts (machine integrations that use "
                                  "API tokens and never log in).", no_args_is_help=True)
tokens_app = typer.Typer(help="Issue, list and revoke API tokens of service accounts.",
                         no_args_is_help=True)
app.add_typer(service_account_app, name="service-account")
app.add_typer(tokens_app, name="tokens")


@service_account_app.command("create")
def service_account_create(
    username: Annotated[str, typer.Argument(help="Account name, e.g. lab-feed")],
    role: Annotated[str, typer.Option(help="admin, prescriber, nurse or analyst: the most its "
                                      "tokens may do")],
    full_name: Annotated[str, typer.Option(help="What the integration is")],
    as_json: JsonFlag = False,
) -> None:
    """Create a service account: no password, no two-factor login, API tokens only."""
    svc = open_services()
    try:
        user = svc.tokens.create_service_account(SYSTEM, username, full_name, role)
    finally:
        svc.close()
    emit({"username": user.username, "role": user.role, "service_account": True}, as_json,
         lambda: console.print(f"created service account {user.username!r} ({user.role})"))


def _token_dict(t, now=None) -> dict[str, object]:
    out: dict[str, object] = {
        "prefix": f"kct_{t.prefix}", "username": t.username, "label": t.label,
        "scopes": list(t.scopes), "created_at": t.created_at, "expires_at": t.expires_at,
        "revoked_at": t.revoked_at, "last_used_at": t.last_used_at}
    if now is not None:
        out["status"] = t.status(now)
    return out


@tokens_app.command("issue")
def tokens_issue(
    username: Annotated[str, typer.Argument(help="The service account")],
    scope: Annotated[list[str], typer.Option(
        help=f"A permission the token carries (repeat the option): {', '.join(SCOPES)}")],
    days: Annotated[int, typer.Option(help="Days until it expires (at most "
                                      "KETACLINIC_API_TOKEN_MAX_DAYS)")],
    label: Annotated[str, typer.Option(help="What the token is for")],
    as_json: JsonFlag = False,
) -> None:
    """Issue a token for USERNAME; the secret is printed once and never again."""
    svc = open_services()
    try:
        user_id = svc.accounts.user_id_for(SYSTEM, username)
        issued = svc.tokens.issue(SYSTEM, user_id, label, scope, days)
    finally:
        svc.close()
    token = issued.token

    def human() -> None:
        console.print(f"API token kct_{token.prefix} for {token.username!r} (scopes "
                      f"{' '.join(token.scopes)}; expires {token.expires_at:%Y-%m-%d %H:%M} "
                      "UTC). The secret is shown once:")
        typer.echo(issued.secret)

    emit({**_token_dict(token), "secret": issued.secret}, as_json, human)


@tokens_app.command("list")
def tokens_list(
    username: Annotated[str | None, typer.Argument(help="Only this service account's")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List tokens (prefix, account, status, expiry, last use, scopes, label); no secrets."""
    svc = open_services()
    try:
        user_id = svc.accounts.user_id_for(SYSTEM, username) if username else None
        tokens = list(svc.tokens.list_tokens(SYSTEM, user_id))
        now = svc.ctx.clock()
    finally:
        svc.close()

    def human() -> None:
        for t in tokens:
            used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never used"
            console.print(f"kct_{t.prefix}\t{t.username}\t{t.status(now)}\t"
                          f"expires {t.expires_at:%Y-%m-%d %H:%M}\t{used}\t"
                          f"{' '.join(t.scopes)}\t{t.label}", markup=False, highlight=False)

    emit([_token_dict(t, now) for t in tokens], as_json, human)


@tokens_app.command("revoke")
def tokens_revoke(
    prefix: Annotated[str, typer.Argument(help="The token's prefix, e.g. kct_1a2b3c4d")],
    as_json: JsonFlag = False,
) -> None:
    """Revoke a token at once: its next request is refused."""
    svc = open_services()
    try:
        token = svc.tokens.revoke(SYSTEM, svc.tokens.token_id_for(SYSTEM, prefix))
    finally:
        svc.close()
    emit(_token_dict(token), as_json,
         lambda: console.print(f"revoked kct_{token.prefix} of {token.username!r}"))
