"""`ketaclinic webhooks …`: register, list, remove and test webhook endpoints (operator)."""

from __future__ import annotations

from typing import Annotated

import typer

from ketaclinic.cli import app
from ketaclinic.cli.output import EXIT_REFUSED, CliError, JsonFlag, emit

webhooks_app = typer.Typer(help="Signed webhooks for urgent alerts and REMS deadlines "
                           "(docs/integrations.md).", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")


def _endpoint_dict(info) -> dict[str, object]:
    return {"id": info.id, "url": info.url, "events": list(info.events),
            "description": info.description, "created_at": info.created_at,
            "pending": info.pending, "failed": info.failed}


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="https:// address that receives the POSTs")],
    event: Annotated[list[str], typer.Option(
        "--event", help="alert.urgent or rems.deadline (repeat for both)")],
    description: Annotated[str, typer.Option("--description", help="What receives it")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Register an endpoint; prints its id and signing secret (shown this once)."""
    from ketaclinic.cli.core import open_services
    from ketaclinic.services.audit.trail import SYSTEM

    svc = open_services()
    try:
        info, secret = svc.webhooks.add(SYSTEM, url, event, description)
    finally:
        svc.close()

    def human() -> None:
        typer.echo(f"webhook {info.id}: {info.url} for {', '.join(info.events)}")
        typer.echo(f"signing secret (shown once; keep it in the receiver's secret store): "
                   f"{secret}")

    emit({**_endpoint_dict(info), "secret": secret}, as_json, human)


@webhooks_app.command("list")
def webhooks_list(as_json: JsonFlag = False) -> None:
    """The active endpoints with their pending and failed deliveries (never the secrets)."""
    from ketaclinic.cli.core import open_services
    from ketaclinic.services.audit.trail import SYSTEM

    svc = open_services()
    try:
        rows = list(svc.webhooks.list(SYSTEM))
    finally:
        svc.close()

    def human() -> None:
        for r in rows:
            typer.echo(f"{r.id}\t{r.url}\t{','.join(r.events)}\t{r.pending} pending\t"
                       f"{r.failed} failed\t{r.description}")
        if not rows:
            typer.echo("no webhook endpoints")

    emit([_endpoint_dict(r) for r in rows], as_json, human)


@webhooks_app.command("remove")
def webhooks_remove(
    endpoint_id: Annotated[int, typer.Argument(help="Endpoint id")],
    as_json: JsonFlag = False,
) -> None:
    """Stop sending to an endpoint; its undelivered messages are cancelled."""
    from ketaclinic.cli.core import open_services
    from ketaclinic.services.audit.trail import SYSTEM

    svc = open_services()
    try:
        cancelled = svc.webhooks.remove(SYSTEM, endpoint_id)
    finally:
        svc.close()
    emit({"id": endpoint_id, "removed": True, "cancelled": cancelled}, as_json,
         f"webhook {endpoint_id} removed; {cancelled} pending delivery(ies) cancelled")


@webhooks_app.command("test")
def webhooks_test(
    endpoint_id: Annotated[int, typer.Argument(help="Endpoint id")],
    as_json: JsonFlag = False,
) -> None:
    """Send a signed webhook.test event to the endpoint now and say how it went (exits 1 if
    it was not delivered)."""
    from ketaclinic.cli.core import open_services
    from ketaclinic.services.audit.trail import SYSTEM

    svc = open_services()
    try:
        message_id = svc.webhooks.test(SYSTEM, endpoint_id)
        delivered = bool(svc.webhooks.deliver(message_id))
        status, error = svc.webhooks.message_state(message_id)
    finally:
        svc.close()
    retried = "the outbox retries it" if status == "pending" else "not retried"
    failed = None if delivered else CliError(
        f"webhook {endpoint_id}: test event not delivered ({error}); {retried}", EXIT_REFUSED)
    emit({"id": endpoint_id, "message_id": message_id, "delivered": delivered,
          "status": status, "last_error": error}, as_json,
         f"webhook {endpoint_id}: test event delivered" if delivered else None, error=failed)
