"""Webhook endpoints in the JSON API (administrators): register, list, remove, send a test."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ketaclinic.api.paging import Page, PageDep
from ketaclinic.http.deps import ApiViewerDep, ServicesDep
from ketaclinic.schemas import UtcTimestamp
from ketaclinic.services.interop.inputs import WebhookCreate
from ketaclinic.services.interop.webhooks import EndpointInfo

router = APIRouter(prefix="/api/admin", tags=["admin"])


class WebhookPublic(BaseModel):
    id: int
    url: str
    events: list[str]
    description: str
    created_at: UtcTimestamp
    pending: int = Field(description="Deliveries waiting (including retries)")
    failed: int = Field(description="Deliveries that failed for good")


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="The signing secret, shown this once (docs/integrations.md)")


class WebhookRemoved(BaseModel):
    cancelled: int = Field(description="Pending deliveries cancelled")


class WebhookTestQueued(BaseModel):
    message_id: int = Field(description="The outbox message; the next outbox run sends it")


def _public(info: EndpointInfo) -> dict:
    return {"id": info.id, "url": info.url, "events": list(info.events),
            "description": info.description, "created_at": info.created_at,
            "pending": info.pending, "failed": info.failed}


@router.post("/webhooks", response_model=WebhookCreated, status_code=201)
def api_add_webhook(body: WebhookCreate, svc: ServicesDep,
                    viewer: ApiViewerDep) -> WebhookCreated:
    """Register an endpoint for urgent alerts and/or REMS deadlines; the secret is shown once."""
    info, secret = svc.webhooks.add(viewer.actor, body.url, body.events, body.description)
    return WebhookCreated(**_public(info), secret=secret)


@router.get("/webhooks", response_model=Page[WebhookPublic])
def api_list_webhooks(svc: ServicesDep, viewer: ApiViewerDep, window: PageDep) -> dict:
    """The active endpoints with their pending and failed deliveries (never the secrets)."""
    page = svc.webhooks.list(viewer.actor, window.limit, window.offset)
    return window.page(page, [WebhookPublic(**_public(i)) for i in page])


@router.delete("/webhooks/{endpoint_id}", response_model=WebhookRemoved)
def api_remove_webhook(endpoint_id: int, svc: ServicesDep,
                       viewer: ApiViewerDep) -> WebhookRemoved:
    """Stop sending to an endpoint; its undelivered messages are cancelled."""
    return WebhookRemoved(cancelled=svc.webhooks.remove(viewer.actor, endpoint_id))


@router.post("/webhooks/{endpoint_id}/test", response_model=WebhookTestQueued, status_code=202)
def api_test_webhook(endpoint_id: int, svc: ServicesDep,
                     viewer: ApiViewerDep) -> WebhookTestQueued:
    """Queue a signed ``webhook.test`` event to the endpoint (sent by the next outbox run)."""
    return WebhookTestQueued(message_id=svc.webhooks.test(viewer.actor, endpoint_id))
