"""Outbound HTTP for the outbox's webhook and SMS channels: which addresses we call, and how.

Server-side request forgery (SSRF) is the risk of an admin-entered URL: the server would post
from inside the clinic's network. So:

* only ``https://`` URLs, unless ``KETACLINIC_OUTBOUND_ALLOW_HTTP`` (tests, a receiver on this
  host) also allows ``http://`` and loopback addresses;
* no user name or password in the URL (they would be logged by proxies) and no fragment;
* link-local addresses (169.254.0.0/16, fe80::/10: the cloud metadata service at
  169.254.169.254 and its IPv6 twin fd00:ec2::254), unspecified (0.0.0.0, ::), multicast,
  broadcast and reserved addresses are refused, whether written literally or resolved from the
  host name; every address the name resolves to is checked just before each request;
* redirects are not followed (a 3xx is a permanent failure), the environment's proxy settings
  are not used, and every request has a timeout (``KETACLINIC_OUTBOUND_TIMEOUT_SECONDS``).

Private networks (10/8, 172.16/12, 192.168/16) are allowed: a clinic's receiver often lives
there. A DNS answer can change between the check and the connection (rebinding); operators who
need more than this check restrict the host's egress with a firewall (docs/integrations.md).

Errors carry the status code or the kind of failure, never a response body: a receiver's answer
might echo what it was sent.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from ketaclinic.config import Settings

METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"),
                                ipaddress.ip_address("fd00:ec2::254")})
RETRYABLE_STATUS = frozenset({408, 429})


class DeliveryError(RuntimeError):
    """A delivery attempt failed; worth retrying (5xx, 408, 429, timeout, connection)."""


class PermanentFailure(DeliveryError):
    """A delivery that retrying cannot fix (a refused address, 4xx, a redirect)."""


class UnsafeUrl(ValueError):
    """The URL is not one the server may call; the message says why."""


@dataclass(frozen=True)
class Response:
    status: int


def check_url(url: str, settings: Settings) -> str:
    """The URL, stripped, if its form is acceptable; UnsafeUrl otherwise (no DNS lookup)."""
    url = (url or "").strip()
    if len(url) > 500:
        raise UnsafeUrl("is longer than 500 characters")
    parts = urlsplit(url)
    allowed = ("https", "http") if settings.outbound_allow_http else ("https",)
    if parts.scheme not in allowed:
        raise UnsafeUrl("must start with https:// (KETACLINIC_OUTBOUND_ALLOW_HTTP allows "
                        "http:// for tests and a receiver on this host)")
    if not parts.hostname:
        raise UnsafeUrl("has no host name")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("may not contain a user name or password (send a token in a header)")
    if parts.fragment:
        raise UnsafeUrl("may not contain a fragment (#...)")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise UnsafeUrl("contains spaces or control characters")
    try:
        port = parts.port
    except ValueError:
        raise UnsafeUrl("has an invalid port") from None
    del port
    literal = _literal_address(parts.hostname)
    if literal is not None:
        _check_address(literal, settings)
    return url


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _check_address(addr: ipaddress.IPv4Address | ipaddress.IPv6Address,
                   settings: Settings) -> None:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr in METADATA_ADDRESSES or addr.is_link_local:
        raise UnsafeUrl(f"points to a link-local or cloud metadata address ({addr})")
    if addr.is_unspecified or addr.is_multicast or addr.is_reserved:  # 240/4: broadcast too
        raise UnsafeUrl(f"points to an address that is no receiver ({addr})")
    if addr.is_loopback and not settings.outbound_allow_http:
        raise UnsafeUrl(f"points to this host ({addr}); allowed only with "
                        "KETACLINIC_OUTBOUND_ALLOW_HTTP")


def check_resolved(url: str, settings: Settings) -> None:
    """Resolve the URL's host and refuse it if any of its addresses may not be called."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DeliveryError(f"the host name does not resolve ({type(exc).__name__})") from None
    for info in infos:
        _check_address(ipaddress.ip_address(str(info[4][0]).split("%")[0]), settings)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default verifying TLS context (certifi's CA bundle), made once per process: each
    new client loaded the bundle again, about 30 ms of CPU for every POST. A context is safe to
    share between clients and threads."""
    return httpx.create_ssl_context(trust_env=False)  # as the client: no SSL_CERT_* from the env


def post_json(url: str, body: bytes, headers: dict[str, str], settings: Settings) -> Response:
    """POST ``body`` as JSON; a 2xx answer returns, anything else raises.

    5xx, 408, 429, timeouts and connection errors raise :class:`DeliveryError` (retried);
    other 4xx, 3xx (redirects are not followed) and refused addresses raise
    :class:`PermanentFailure`.
    """
    try:
        check_url(url, settings)
        check_resolved(url, settings)
    except UnsafeUrl as exc:
        raise PermanentFailure(f"the address is refused: {exc}") from None
    try:
        with httpx.Client(timeout=settings.outbound_timeout_seconds, follow_redirects=False,
                          trust_env=False, verify=_tls_context()) as client:
            answer = client.post(url, content=body, headers={
                "Content-Type": "application/json", "User-Agent": "ketaclinic", **headers})
    except httpx.TimeoutException as exc:
        raise DeliveryError(f"timed out ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:
        raise DeliveryError(f"no answer ({type(exc).__name__})") from None
    status = answer.status_code
    if 200 <= status < 300:
        return Response(status)
    if status >= 500 or status in RETRYABLE_STATUS:
        raise DeliveryError(f"HTTP {status}")
    if 300 <= status < 400:
        raise PermanentFailure(f"HTTP {status} (redirects are not followed)")
    raise PermanentFailure(f"HTTP {status}")
