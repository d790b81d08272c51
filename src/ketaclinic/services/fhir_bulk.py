"""FHIR output formats around the one mapper: Bundles (``collection`` or ``transaction``),
NDJSON (one file per resource type, as the Bulk Data spec asks), and a validation of the shape
with ``fhir.resources.R4B`` over all resources (tests) or a sample (run time)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

BUNDLE_TYPES = ("collection", "transaction")
FORMATS = (*BUNDLE_TYPES, "ndjson")


def bundle(resources: Iterable[dict[str, Any]], kind: str, base_url: str) -> dict[str, Any]:
    """A Bundle of ``kind``; entries' fullUrl is ``<base>/<Type>/<id>`` so that the resources'
    relative references (``Patient/p-1``) resolve inside it. A transaction PUTs each resource
    at its id, so sending the same export twice updates rather than duplicates."""
    if kind not in BUNDLE_TYPES:
        raise ValueError(f"bundle type must be one of {', '.join(BUNDLE_TYPES)}")
    base = base_url.rstrip("/")
    entries = []
    for r in resources:
        path = f"{r['resourceType']}/{r['id']}"
        e: dict[str, Any] = {"fullUrl": f"{base}/{path}", "resource": r}
        if kind == "transaction":
            e["request"] = {"method": "PUT", "url": path}
        entries.append(e)
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


Seal = Callable[[str, int, str], str]
"""(resource type, line number from 0, JSON text) -> the line stored instead (encrypted)."""


class NdjsonWriter:
    """Writes resources as NDJSON, one ``<Type>.ndjson`` per resource type in ``folder``, or
    all to one stream (``-`` on the command line). With ``seal``, each line is stored as
    ``seal(type, n, line)`` in ``<Type>.ndjson<suffix>``: the plain text never reaches the
    disk."""

    def __init__(self, folder: Path | None = None, stream: IO[str] | None = None,
                 seal: Seal | None = None, suffix: str = "") -> None:
        self.folder, self.stream, self.seal, self.suffix = folder, stream, seal, suffix
        self.files: dict[str, IO[str]] = {}
        self.counts: dict[str, int] = {}
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    def write(self, r: dict[str, Any]) -> None:
        rt = r["resourceType"]
        out = self.stream
        if out is None:
            out = self.files.get(rt)
            if out is None:
                assert self.folder is not None
                out = self.files[rt] = (self.folder / f"{rt}.ndjson{self.suffix}").open(
                    "w", encoding="utf-8")
        line = json.dumps(r, separators=(",", ":"), ensure_ascii=False)
        if self.seal is not None:
            line = self.seal(rt, self.counts.get(rt, 0), line)
        out.write(line)
        out.write("\n")
        self.counts[rt] = self.counts.get(rt, 0) + 1

    def close(self) -> None:
        for f in self.files.values():
            f.close()
        self.files = {}


def r4b_problems(resources: Iterable[dict[str, Any]], every: int = 1) -> list[str]:
    """Validate every ``every``-th resource with the fhir.resources R4B model; problems found."""
    from fhir.resources.R4B import get_fhir_model_class

    out = []
    for i, r in enumerate(resources):
        if i % every:
            continue
        try:
            get_fhir_model_class(r["resourceType"]).model_validate(r)
        except Exception as exc:  # noqa: BLE001 - pydantic ValidationError: report it
            out.append(f"{r['resourceType']}/{r.get('id')}: {str(exc).splitlines()[:3]}")
    return out
