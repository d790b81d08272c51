"""Walk every route and every API operation of the app (imported as `kcroutes`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any


def all_routes(routes: Any, prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of every route, through included routers (nested in new FastAPI)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            ctx = getattr(route, "include_context", None)
            yield from all_routes(inner.routes, prefix + (getattr(ctx, "prefix", "") or ""))
        elif getattr(route, "path", None) is not None:
            yield prefix + route.path, set(getattr(route, "methods", None) or set())


def fill_path(path: str, patient_id: int, other: int = 1) -> str:
    for name in re.findall(r"{(\w+)}", path):
        path = path.replace("{" + name + "}", str(patient_id if name == "patient_id" else other))
    return path


def form_post_routes(app: Any) -> list[str]:
    """Every page route that accepts POST (the server-rendered forms), from the app itself."""
    return sorted({p for p, m in all_routes(app.routes)
                   if "POST" in m and not p.startswith(("/api", "/static"))})


def state_changing_operations(app: Any) -> list[tuple[str, str]]:
    """(METHOD, path) of every POST/PUT/PATCH/DELETE in the OpenAPI schema."""
    out = []
    for path, items in app.openapi()["paths"].items():
        for method in items:
            if method in {"post", "put", "patch", "delete"}:
                out.append((method.upper(), path))
    return sorted(out)
