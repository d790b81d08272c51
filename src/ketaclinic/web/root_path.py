"""Serving under a sub-path of a proxy (``KETACLINIC_ROOT_PATH=/clinic``).

The pages and the API are written with absolute paths (``/patients/7``). Under a root path
this middleware, outermost but for the proxy-header one:

* takes requests with or without the prefix (a proxy that strips it, or one that passes it);
* hands the app the path without it (OpenAPI's ``servers`` names it: see create_app);
* prefixes every same-site absolute URL in HTML (``href``, ``action``, ``src``, ``data-*-url``),
  every ``Location`` header and every cookie's ``Path``; scripts read the prefix from
  ``<html data-root="…">``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTML_URL = re.compile(rb'((?:href|action|src|data-[a-z-]+-url)=")/(?!/)')
COOKIE_PATH = re.compile(r"(?i)(;\s*path=)/")


@dataclass
class _HtmlResponse:
    """An HTML response held back until its whole body is in (its URLs are rewritten)."""

    start: Message
    body: list[bytes] = field(default_factory=list)


def normalise_root_path(value: str) -> str:
    """``clinic/`` → ``/clinic``; empty stays empty."""
    value = value.strip().strip("/")
    return f"/{value}" if value else ""


class RootPath:
    def __init__(self, app: ASGIApp, root_path: str) -> None:
        self.app = app
        self.root = root_path
        self.root_bytes = root_path.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == self.root or path.startswith(self.root + "/"):
            path = path[len(self.root):] or "/"
        # The app sees paths without the prefix (its routes, "/api" checks and login "next"
        # targets stay as they are); only what leaves it gets the prefix.
        scope = dict(scope, path=path, raw_path=path.encode("utf-8", "surrogateescape"))
        html: _HtmlResponse | None = None

        async def rewriting_send(message: Message) -> None:
            nonlocal html
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                self._rewrite_headers(headers)
                if headers.get("content-type", "").startswith("text/html"):
                    html = _HtmlResponse(message)
                    return
            elif message["type"] == "http.response.body" and html is not None:
                html.body.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                await self._send_html(html, send)
                return
            await send(message)

        await self.app(scope, receive, rewriting_send)

    def _rewrite_headers(self, headers: MutableHeaders) -> None:
        location = headers.get("location")
        if location and location.startswith("/") and not location.startswith("//"):
            headers["location"] = self.root + location
        cookies = headers.getlist("set-cookie")
        if cookies:
            del headers["set-cookie"]
            for cookie in cookies:
                headers.append("set-cookie", COOKIE_PATH.sub(rf"\g<1>{self.root}/", cookie))

    async def _send_html(self, html: _HtmlResponse, send: Send) -> None:
        body = b"".join(html.body)
        body = HTML_URL.sub(rb"\g<1>" + self.root_bytes + b"/", body)
        body = body.replace(b"<html ", b'<html data-root="' + self.root_bytes + b'" ', 1)
        start = html.start
        headers = MutableHeaders(scope=start)
        headers["content-length"] = str(len(body))
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})
