"""The outbox's ``sms`` channel: a provider-neutral HTTP adapter for self-report links.

``KETACLINIC_SMS_URL`` names a gateway (the provider's API, or a small relay the clinic runs in
front of it) that accepts ``POST`` with ``Authorization: Bearer KETACLINIC_SMS_TOKEN`` and the
JSON body ``{"from": KETACLINIC_SMS_SENDER, "to": "+15551234567", "body": "..."}``; any 2xx
answer means accepted. The address rules, timeouts and retries are the outbound ones
(``services/interop/outbound.py``); a refused request raises, and the outbox retries it as it does
every channel (``outbox.MAX_ATTEMPTS``).

The message is minimal: the clinic's name and the link, no instrument, diagnosis or treatment
(it may be read on a locked screen). The number is the patient's phone in international form
(E.164: ``+`` then 8 to 15 digits; spaces, dots, dashes and brackets are dropped).
"""

from __future__ import annotations

import json
import re

from ketaclinic.config import Settings
from ketaclinic.services.interop.outbound import PermanentFailure, post_json

_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")
_SEPARATORS = re.compile(r"[ ().\-/]")


def e164(phone: str) -> str | None:
    """The phone number in E.164 form, or None when it is not an international number.

    >>> e164("+1 (555) 010-2030")
    '+15550102030'
    >>> e164("555 0102") is None
    True
    """
    number = _SEPARATORS.sub("", phone or "")
    return number if _E164.match(number) else None


def sms_text(clinic_name: str, url: str, hours: int) -> str:
    """The text of a self-report link: who sends it and the link, nothing clinical."""
    return f"{clinic_name}: a short questionnaire from your care team: {url} " \
           f"(works once, for {hours} hours)"


class SmsAdapter:
    """Posts ``{"from", "to", "body"}`` to the configured gateway."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def deliver(self, message) -> None:  # outbox.Delivery
        cfg = self.settings
        if not cfg.sms_url:
            raise RuntimeError("SMS is not configured (KETACLINIC_SMS_URL)")
        if not message.recipient:
            raise RuntimeError("the patient has no mobile number in international form")
        headers = {}
        if cfg.sms_token is not None:
            headers["Authorization"] = f"Bearer {cfg.sms_token.get_secret_value()}"
        body = json.dumps({"from": cfg.sms_sender, "to": message.recipient,
                           "body": message.body}).encode("utf-8")
        try:
            post_json(cfg.sms_url, body, headers, cfg)
        except PermanentFailure as exc:
            raise PermanentFailure(f"the SMS gateway refused the message: {exc}") from None
