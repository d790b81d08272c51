"""The controlled-substance ledger pages (/ledger). Append-only: there is no edit or delete
route; a mistake is fixed with a correction entry that refers to the original."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from ketaclinic.bootstrap import Services
from ketaclinic.http.deps import ServicesDep, Viewer, ViewerDep, read_checked_form
from ketaclinic.http.inputs import model_from_form
from ketaclinic.schemas_chair import (
    CorrectionCreate,
    CountCreate,
    LossCreate,
    ReceiptCreate,
    TransferCreate,
    WasteCreate,
)
from ketaclinic.services.errors import InvalidInput, NotFound
from ketaclinic.web.render import redirect, render

router = APIRouter()

# kind -> (the form's model, the LedgerService method that records it)
FORMS: dict[str, tuple[type[BaseModel], str]] = {
    "receipts": (ReceiptCreate, "record_receipt"),
    "wastes": (WasteCreate, "record_waste"),
    "transfers": (TransferCreate, "record_transfer"),
    "losses": (LossCreate, "record_loss"),
    "counts": (CountCreate, "record_count"),
    "corrections": (CorrectionCreate, "record_correction"),
}


def _page(request: Request, svc: Services, viewer: Viewer, status_code: int = 200,
          **extra: object) -> Response:
    return render(request, "ledger.html", status_code=status_code,
                  o=svc.chair.ledger.overview(viewer.actor), today=svc.ctx.today(),
                  values=extra.pop("values", {}), **extra)


@router.get("/ledger")
def ledger(request: Request, svc: ServicesDep, viewer: ViewerDep) -> Response:
    return _page(request, svc, viewer)


@router.get("/ledger/lots/{lot}")
def ledger_lot(request: Request, lot: str, svc: ServicesDep, viewer: ViewerDep) -> Response:
    return render(request, "ledger_lot.html", lot=lot,
                  rows=svc.chair.ledger.lot_history(viewer.actor, lot[:60]))


@router.get("/ledger/entries/{entry_id}")
def ledger_entry(request: Request, entry_id: int, svc: ServicesDep,
                 viewer: ViewerDep) -> Response:
    entry = svc.chair.ledger.entry(viewer.actor, entry_id)
    return render(request, "ledger_lot.html", lot=entry["lot"], rows=[entry], single=True)


@router.post("/ledger/{kind}")
async def ledger_append(request: Request, kind: str, svc: ServicesDep,
                        viewer: ViewerDep) -> Response:
    form = await read_checked_form(request, viewer)  # CSRF before anything else
    if kind not in FORMS:
        raise NotFound("no such ledger form")
    model, method = FORMS[kind]
    try:
        data = model_from_form(model, form)
        getattr(svc.chair.ledger, method)(viewer.actor, data)
    except (InvalidInput, NotFound) as exc:
        safe = {k: v for k, v in form.items() if "password" not in k}
        return _page(request, svc, viewer, status_code=422 if isinstance(
            exc, InvalidInput) else 404, error=f"{kind}: {exc}", values=safe,
            error_section=kind)
    return redirect(f"/ledger#{kind}")
