"""The only messages a page shows after a redirect: ``?msg=`` carries a code, never text.

A link must not be able to put words on the clinic's pages ("Your account is locked, call
555-0100"), so every page looks its code up here and an unknown code shows nothing. A message
that needs a value (how many recovery codes are left, which user was reset) takes it from the
database through the page that renders it, never from the link.
"""

from __future__ import annotations

LOGIN_PAGE = "/login"
ACCOUNT_PAGE = "/account"
ADMIN_USERS_PAGE = "/admin/users"
ADMIN_WEBHOOKS_PAGE = "/admin/webhooks"

MESSAGES: dict[str, dict[str, str]] = {
    LOGIN_PAGE: {
        "login": "Please log in.",
        "expired": "Your session expired; please log in again.",
        "temporary-expired": "Your temporary password has expired; ask an administrator to "
                             "reset your password again.",
        "logged-out": "You are logged out.",
    },
    ACCOUNT_PAGE: {
        "pin-set": "Your lock-screen PIN is set.",
        "pin-removed": "Your lock-screen PIN is removed.",
        "password-changed": "Your password was changed. Other sessions were logged out.",
        "recovery-code-used": "You logged in with a recovery code; {left} left. If you lost your "
                              "phone, ask an administrator to reset your two-factor login.",
    },
    ADMIN_USERS_PAGE: {
        "two-factor-reset": "Two-factor login of {username} was reset; they set it up again at "
                            "their next login.",
    },
    ADMIN_WEBHOOKS_PAGE: {
        "removed": "The endpoint was removed: nothing more is sent to it, and its undelivered "
                   "messages were cancelled.",
        "test-queued": "A signed webhook.test event is queued; the next outbox run sends it "
                       "(its result shows in the endpoint's pending and failed counts).",
    },
}


def page_message(page: str, code: str, **values: object) -> str:
    """The text for ``code`` on ``page``; "" for an unknown code or a missing value."""
    text = MESSAGES.get(page, {}).get(code, "")
    try:
        return text.format(**values)
    except (KeyError, IndexError):
        return ""


def with_message(path: str, code: str, fragment: str = "", **ids: int) -> str:
    """A redirect target that asks ``path`` to show message ``code`` (which must exist); ``ids``
    are record ids the page looks up itself."""
    if code not in MESSAGES.get(path, {}):
        raise KeyError(f"no message {code!r} for {path}")
    extra = "".join(f"&{key}={int(value)}" for key, value in ids.items())
    return f"{path}?msg={code}{extra}" + (f"#{fragment}" if fragment else "")
