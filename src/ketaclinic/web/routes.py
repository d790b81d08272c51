"""All server-rendered pages."""

from fastapi import APIRouter

from ketaclinic.web import pages_admin, pages_auth, pages_patients

router = APIRouter(include_in_schema=False)
router.include_router(pages_auth.router)
router.include_router(pages_admin.router)
router.include_router(pages_patients.router)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
