"""Administration page for webhooks: the endpoints that receive signed urgent-alert and
REMS-deadline events (services/interop/webhooks.py, docs/integrations.md).

Administrators (``integrations.manage``) list, add, test and remove endpoints; the service
checks the permission and audits each change (``webhook.add``, ``webhook.test``,
``webhook.remove``). A new endpoint's signing secret is in the answer to the POST only (shown
once), never in a link or a later page. The form builds the model the JSON API takes
(:class:`~ketaclinic.services.interop.inputs.WebhookCreate`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ketaclinic.http.deps import ServicesDep, Viewer, ViewerDep, read_checked_form
from ketaclinic.http.inputs import model_from_form
from ketaclinic.services.errors import InvalidInput
from ketaclinic.services.interop.inputs import WebhookCreate
from ketaclinic.services.interop.webhooks import EVENTS, EndpointInfo
from ketaclinic.web.messages import ADMIN_WEBHOOKS_PAGE, page_message, with_message
from ketaclinic.web.render import redirect, render

router = APIRouter(prefix="/admin")


def _page(request: Request, svc: Any, viewer: Viewer, status_code: int = 200, *,
          created: tuple[EndpointInfo, str] | None = None, error: str = "", message: str = "",
          values: dict[str, Any] | None = None) -> Response:
    return render(request, "admin_webhooks.html", status_code=status_code,
                  endpoints=list(svc.webhooks.list(viewer.actor)), events=EVENTS,
                  created=created, error=error, message=message, values=values or {})


@router.get("/webhooks")
def webhooks_page(request: Request, svc: ServicesDep, viewer: ViewerDep,
                  msg: str = "") -> Response:
    return _page(request, svc, viewer, message=page_message(ADMIN_WEBHOOKS_PAGE, msg))


@router.post("/webhooks")
async def webhook_add(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)  # strict and CSRF-checked
    # The event boxes repeat one name: the body read_checked_form already accepted, in full.
    events = [v for k, v in parse_qsl((await request.body()).decode("ascii"),
                                      keep_blank_values=True, max_num_fields=200)
              if k == "event"]
    kept = {"url": form.get("url", ""), "description": form.get("description", ""),
            "events": events}
    try:
        body = model_from_form(WebhookCreate, form, extra={"events": events})
        created = svc.webhooks.add(viewer.actor, body.url, body.events, body.description)
    except InvalidInput as exc:
        return _page(request, svc, viewer, exc.status, error=str(exc), values=kept)
    return _page(request, svc, viewer, 201, created=created)


@router.post("/webhooks/{endpoint_id}/test")
async def webhook_test(request: Request, endpoint_id: int, svc: ServicesDep,
                       viewer: ViewerDep) -> Response:
    await read_checked_form(request, viewer)
    svc.webhooks.test(viewer.actor, endpoint_id)
    return redirect(with_message(ADMIN_WEBHOOKS_PAGE, "test-queued"))


@router.post("/webhooks/{endpoint_id}/remove")
async def webhook_remove(request: Request, endpoint_id: int, svc: ServicesDep,
                         viewer: ViewerDep) -> Response:
    await read_checked_form(request, viewer)
    svc.webhooks.remove(viewer.actor, endpoint_id)
    return redirect(with_message(ADMIN_WEBHOOKS_PAGE, "removed"))
