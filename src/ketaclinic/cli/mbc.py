"""`ketaclinic outbox …`: deliver due self-report links and reminders."""

from __future__ import annotations

import typer

from ketaclinic.cli import app, fail

outbox_app = typer.Typer(help="The message outbox (self-report links, reminders, webhooks).",
                         no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")


@outbox_app.command("send")
def outbox_send() -> None:
    """Queue due reminders and REMS-deadline webhooks, then deliver every due message
    (console, SMTP, SMS or webhook)."""
    from ketaclinic.cli.core import open_services
    from ketaclinic.services.errors import ServiceError

    svc = open_services()
    try:
        report = svc.mbc.outbox.send_due()
    except ServiceError as exc:
        raise fail(str(exc)) from exc
    finally:
        svc.close()
    typer.echo(f"outbox: {report.queued} reminder(s) queued, {report.events} webhook "
               f"event(s) queued, {report.sent} sent, {report.failed} failed")
    if report.failed:
        raise typer.Exit(1)
