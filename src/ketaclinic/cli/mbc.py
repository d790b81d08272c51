"""`ketaclinic outbox …`: deliver due self-report links and reminders."""

from __future__ import annotations

import typer

from ketaclinic.cli import app
from ketaclinic.cli.output import EXIT_REFUSED, CliError, JsonFlag, emit

outbox_app = typer.Typer(help="The message outbox (self-report links, reminders, webhooks).",
                         no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")


@outbox_app.command("send")
def outbox_send(as_json: JsonFlag = False) -> None:
    """Queue due reminders and REMS-deadline webhooks, then deliver every due message
    (console, SMTP, SMS or webhook); exits 1 if a delivery failed."""
    from ketaclinic.cli.core import open_services

    svc = open_services()
    try:
        report = svc.mbc.outbox.send_due()
    finally:
        svc.close()
    failed = CliError(f"{report.failed} message(s) failed to send", EXIT_REFUSED) if (
        report.failed) else None
    emit({"queued": report.queued, "events": report.events, "sent": report.sent,
          "failed": report.failed}, as_json,
         f"outbox: {report.queued} reminder(s) queued, {report.events} webhook event(s) "
         f"queued, {report.sent} sent, {report.failed} failed", error=failed)
