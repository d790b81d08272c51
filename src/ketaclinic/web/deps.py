"""The request helpers, under the name the pages have always imported them by.

They live in :mod:`ketaclinic.http.deps`, which the JSON API imports too (so ``api/`` never
depends on ``web/``). New code imports from there.
"""

from ketaclinic.http.deps import (
    CHANGE_PASSWORD_API,
    CHANGE_PASSWORD_PAGE,
    CSRF_HEADER,
    ENROLMENT_PAGE,
    FORM_TYPE,
    PRELOGIN_COOKIE,
    SESSION_COOKIE,
    ApiViewerDep,
    CsrfError,
    EnrolmentRequired,
    PasswordChangeRequired,
    ServicesDep,
    Viewer,
    ViewerDep,
    api_viewer,
    check_csrf,
    client_address,
    current_viewer,
    read_checked_form,
    read_form,
    services,
    set_session_cookie,
)

__all__ = [
    "CHANGE_PASSWORD_API",
    "CHANGE_PASSWORD_PAGE",
    "CSRF_HEADER",
    "ENROLMENT_PAGE",
    "FORM_TYPE",
    "PRELOGIN_COOKIE",
    "SESSION_COOKIE",
    "ApiViewerDep",
    "CsrfError",
    "EnrolmentRequired",
    "PasswordChangeRequired",
    "ServicesDep",
    "Viewer",
    "ViewerDep",
    "api_viewer",
    "check_csrf",
    "client_address",
    "current_viewer",
    "read_checked_form",
    "read_form",
    "services",
    "set_session_cookie",
]
