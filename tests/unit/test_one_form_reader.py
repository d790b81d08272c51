"""Guard: a page reads what it stores through the one form reader, ``model_from_form``.

A form route builds the model its JSON route takes (or, without a JSON route, a model of its
own) with ``ketaclinic.http.inputs.model_from_form``, so the model's validators and words
decide for the form and the JSON body alike. This scan walks every module of ``web/`` and
fails on a field read by hand from a form, ``form.get("x")`` or ``form["x"]`` (on any name a
form is bound to: ``form``, ``raw``, or what ``read_form`` / ``read_checked_form`` returned),
unless the allow-list below says why that field is no input model's business. Entries go
stale when the read goes away: the test fails on those too, so the list only shrinks.
"""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Iterator

import kcsource

WEB = pathlib.Path(__file__).resolve().parents[2] / "src" / "ketaclinic" / "web"
FORM_NAMES = {"form", "raw"}
READERS = {"read_form", "read_checked_form"}

CSRF = "anti-forgery: checked against the session (or the pre-login cookie), never stored"
KEY = "the Idempotency-Key: goes to the service beside the model, as the JSON route's header"
BUTTON = "which button was pressed: what to do with the model, not a value of it"
NAVIGATION = "where to go back to, or which page to show again: nothing is stored"
CREDENTIAL = ("a secret checked (or hashed) by the account service: it never goes into a "
              "model, whose refusal and re-shown values could carry it")
REDISPLAY = ("shown again in the form after a refusal; what is stored is the model built "
             "with model_from_form")
SHAPE = ("the form's own shape, converted into a model's field and passed to model_from_form "
         "as extra (the JSON body has it in another shape)")

#: (module, field) -> why the page may read it by hand
ALLOWED: dict[tuple[str, str], str] = {
    # --- anti-forgery, keys, buttons and navigation
    ("pages_auth.py", "csrf_token"): CSRF,
    ("pages_auth.py", "prelogin"): CSRF,
    ("pages_lock.py", "csrf_token"): CSRF,
    ("pages_dosing.py", "idempotency_key"): KEY,
    ("pages_mbc.py", "idempotency_key"): KEY,
    ("pages_patients.py", "idempotency_key"): KEY,
    ("pages_session.py", "idempotency_key"): KEY,
    ("pages_dosing.py", "action"): BUTTON,  # "check" or "save" the dose
    ("pages_dosing.py", "then_screen"): BUTTON,  # save the facts, then screen for this one
    ("pages_patients.py", "not_duplicate"): BUTTON,  # "register anyway": a confirmation box
    ("pages_auth.py", "next"): NAVIGATION,
    ("pages_lock.py", "next"): NAVIGATION,
    ("pages_mbc.py", "back"): NAVIGATION,  # the patient page to return to after acknowledging
    ("pages_dosing.py", "route"): NAVIGATION,  # the dose page's tab to show again
    # --- credentials
    ("pages_auth.py", "username"): CREDENTIAL,
    ("pages_auth.py", "password"): CREDENTIAL,
    ("pages_auth.py", "totp_code"): CREDENTIAL,
    ("pages_auth.py", "recovery_code"): CREDENTIAL,
    ("pages_lock.py", "secret"): CREDENTIAL,
    ("pages_account.py", "password"): CREDENTIAL,
    ("pages_account.py", "current_password"): CREDENTIAL,
    ("pages_account.py", "new_password"): CREDENTIAL,
    ("pages_account.py", "confirm_password"): CREDENTIAL,
    ("pages_account.py", "code"): CREDENTIAL,
    # --- values shown again after a refusal
    ("pages_webhooks.py", "url"): REDISPLAY,
    ("pages_webhooks.py", "description"): REDISPLAY,
    # --- the form's own shapes
    ("pages_chair.py", "weekday_{}"): SHAPE,  # Mon … Sun boxes -> weekdays "0,3"
    ("pages_session.py", "<dynamic>"): SHAPE,  # device_1 … device_3 -> device_times
    ("pages_session.py", "started_at"): SHAPE,  # none typed: the first device's time
    ("pages_patients.py", "system"): SHAPE,  # an ICD-10 code: its display filled in
    ("pages_patients.py", "code"): SHAPE,
    ("pages_patients.py", "display"): SHAPE,
    ("pages_dosing.py", "trial_rows"): SHAPE,  # the facts form's rows -> the facts document
    ("pages_dosing.py", "facts_version"): SHAPE,
}


def _form_names(tree: ast.Module) -> set[str]:
    """``form``, ``raw`` and every name bound to what ``read_form`` returned."""
    names = set(FORM_NAMES)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Await):
            call = node.value.value
            if (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                    and call.func.id in READERS):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def _key(node: ast.expr) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):  # f"weekday_{i}" -> "weekday_{}"
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return "<dynamic>"


def reads(tree: ast.Module) -> Iterator[tuple[str, int]]:
    """(field, line) of each field read by hand from a form in ``tree``."""
    names = _form_names(tree)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get" and isinstance(node.func.value, ast.Name)
                and node.func.value.id in names and node.args):
            yield _key(node.args[0]), node.lineno
        elif (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
              and node.value.id in names and isinstance(node.ctx, ast.Load)):
            yield _key(node.slice), node.lineno


def _found() -> dict[tuple[str, str], list[int]]:
    out: dict[tuple[str, str], list[int]] = {}
    for path in sorted(WEB.glob("*.py")):
        for field, line in reads(kcsource.tree(path)):
            out.setdefault((path.name, field), []).append(line)
    return out


def test_pages_read_what_they_store_through_model_from_form_only() -> None:
    unexplained = {k: v for k, v in _found().items() if k not in ALLOWED}
    assert not unexplained, (
        "a page reads form fields by hand; build the route's input model with "
        "http.inputs.model_from_form instead (or, for a csrf token, a button, navigation, a "
        "credential, a value shown again or a form-only shape, add it to ALLOWED with the "
        "reason): "
        + ", ".join(f"{m}:{lines} {f!r}" for (m, f), lines in sorted(unexplained.items())))


def test_the_allow_list_has_no_stale_entries() -> None:
    stale = sorted(set(ALLOWED) - set(_found()))
    assert not stale, f"no longer read by hand, delete from ALLOWED: {stale}"


def test_the_scan_sees_a_hand_read_field() -> None:
    """The scan itself: each way of reading a field by hand is found."""
    source = '''
async def page(request, viewer):
    posted = await read_checked_form(request, viewer)
    a = posted.get("dose_mg", "")
    b = form["lot"]
    c = raw.get(f"item_{n}")
    d = form.get(name)
    e = other.get("not_a_form")
'''
    assert sorted(reads(ast.parse(source))) == [
        ("<dynamic>", 7), ("dose_mg", 4), ("item_{}", 6), ("lot", 5)]
