"""Machine access in the JSON API: service accounts and their API tokens (administrators)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ketaclinic.api.paging import Page, PageDep
from ketaclinic.api.routes import UserPublic, _user
from ketaclinic.http.deps import ApiViewerDep, ServicesDep
from ketaclinic.schemas import UtcTimestamp
from ketaclinic.services.accounts.api_tokens import TokenInfo
from ketaclinic.services.accounts.inputs import ServiceAccountCreate, TokenCreate
from ketaclinic.services.accounts.permissions import SCOPES

router = APIRouter(prefix="/api", tags=["admin"])


class TokenPublic(BaseModel):
    id: int
    prefix: str
    label: str
    scopes: list[str]
    user_id: int
    username: str
    status: str  # active, expired or revoked
    created_at: UtcTimestamp
    expires_at: UtcTimestamp
    revoked_at: UtcTimestamp | None
    last_used_at: UtcTimestamp | None


class TokenIssuedPublic(TokenPublic):
    token: str = Field(description="The secret: shown once, only its hash is kept")


class ScopesPublic(BaseModel):
    scopes: list[str]


def _token(t: TokenInfo, now: dt.datetime) -> TokenPublic:
    return TokenPublic(id=t.id, prefix=f"kct_{t.prefix}", label=t.label, scopes=list(t.scopes),
                       user_id=t.user_id, username=t.username, status=t.status(now),
                       created_at=t.created_at, expires_at=t.expires_at,
                       revoked_at=t.revoked_at, last_used_at=t.last_used_at)


@router.post("/service-accounts", response_model=UserPublic, status_code=201)
def api_create_service_account(body: ServiceAccountCreate, svc: ServicesDep,
                               viewer: ApiViewerDep) -> UserPublic:
    """A user that never logs in (no password, no two-factor) and acts only with API tokens."""
    return _user(svc.tokens.create_service_account(viewer.actor, body.username, body.full_name,
                                                   body.role))


@router.get("/tokens/scopes", response_model=ScopesPublic)
def api_token_scopes(viewer: ApiViewerDep) -> ScopesPublic:
    """Every scope a token may carry: the permission names."""
    return ScopesPublic(scopes=list(SCOPES))


@router.post("/service-accounts/{user_id}/tokens", response_model=TokenIssuedPublic,
             status_code=201)
def api_issue_token(user_id: int, body: TokenCreate, svc: ServicesDep,
                    viewer: ApiViewerDep) -> TokenIssuedPublic:
    """Issue a token; ``token`` (the secret) is in this answer only, never again."""
    issued = svc.tokens.issue(viewer.actor, user_id, body.label, body.scopes,
                              body.expires_in_days)
    public = _token(issued.token, svc.ctx.clock())
    return TokenIssuedPublic(**public.model_dump(), token=issued.secret)


@router.get("/tokens", response_model=Page[TokenPublic])
def api_list_tokens(svc: ServicesDep, viewer: ApiViewerDep, window: PageDep,
                    user_id: int | None = None) -> dict:
    """Every token (or one service account's), oldest first, without secrets."""
    now = svc.ctx.clock()
    page = svc.tokens.list_tokens(viewer.actor, user_id, window.limit, window.offset)
    return window.page(page, [_token(t, now) for t in page])


@router.post("/tokens/{token_id}/revoke", response_model=TokenPublic)
def api_revoke_token(token_id: int, svc: ServicesDep, viewer: ApiViewerDep) -> TokenPublic:
    """Revoke a token: its next request is refused (401)."""
    return _token(svc.tokens.revoke(viewer.actor, token_id), svc.ctx.clock())
