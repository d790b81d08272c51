"""`ketaclinic webhooks …`: register, list, remove and test webhook endpoints (operator)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ketaclinic.cli import app, fail

webhooks_app = typer.Typer(help="Signed webhooks for urgent alerts and REMS deadlines "
                           "(docs/integrations.md).", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")


def _run(call):  # type: ignore[no-untyped-def]
    from ketaclinic.cli.core import open_services
    from ketaclinic.services.errors import ServiceError

    svc = open_services()
    try:
        return call(svc)
    except ServiceError as exc:
        raise fail(str(exc)) from exc
    finally:
        svc.close()


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="https:// address that receives the POSTs")],
    event: Annotated[list[str], typer.Option(
        "--event", help="alert.urgent or rems.deadline (repeat for both)")],
    description: Annotated[str, typer.Option("--description", help="What receives it")] = "",
) -> None:
    """Register an endpoint; prints its id and signing secret (shown this once)."""
    from ketaclinic.services.audit import SYSTEM

    info, secret = _run(lambda svc: svc.webhooks.add(SYSTEM, url, event, description))
    typer.echo(f"webhook {info.id}: {info.url} for {', '.join(info.events)}")
    typer.echo(f"signing secret (shown once; keep it in the receiver's secret store): {secret}")


@webhooks_app.command("list")
def webhooks_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """The active endpoints with their pending and failed deliveries (never the secrets)."""
    from ketaclinic.services.audit import SYSTEM

    rows = _run(lambda svc: svc.webhooks.list(SYSTEM))
    if as_json:
        typer.echo(json.dumps([{"id": r.id, "url": r.url, "events": list(r.events),
                                "description": r.description, "pending": r.pending,
                                "failed": r.failed} for r in rows]))
        return
    for r in rows:
        typer.echo(f"{r.id}\t{r.url}\t{','.join(r.events)}\t{r.pending} pending\t"
                   f"{r.failed} failed\t{r.description}")
    if not rows:
        typer.echo("no webhook endpoints")


@webhooks_app.command("remove")
def webhooks_remove(endpoint_id: Annotated[int, typer.Argument(help="Endpoint id")]) -> None:
    """Stop sending to an endpoint; its undelivered messages are cancelled."""
    from ketaclinic.services.audit import SYSTEM

    cancelled = _run(lambda svc: svc.webhooks.remove(SYSTEM, endpoint_id))
    typer.echo(f"webhook {endpoint_id} removed; {cancelled} pending delivery(ies) cancelled")


@webhooks_app.command("test")
def webhooks_test(endpoint_id: Annotated[int, typer.Argument(help="Endpoint id")]) -> None:
    """Send a signed webhook.test event to the endpoint now and say how it went."""
    from ketaclinic.services.audit import SYSTEM

    def call(svc):  # type: ignore[no-untyped-def]
        message_id = svc.webhooks.test(SYSTEM, endpoint_id)
        delivered = svc.webhooks.deliver(message_id)
        return delivered, svc.webhooks.message_state(message_id)

    delivered, (status, error) = _run(call)
    if delivered:
        typer.echo(f"webhook {endpoint_id}: test event delivered")
        return
    typer.echo(f"webhook {endpoint_id}: test event not delivered ({error}); "
               f"{'the outbox retries it' if status == 'pending' else 'not retried'}")
    raise typer.Exit(1)
