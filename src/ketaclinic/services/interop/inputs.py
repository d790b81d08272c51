"""The webhook endpoint input: one model for the JSON body and the admin page's form.

``POST /api/admin/webhooks`` takes :class:`WebhookCreate` as its body; the *Webhooks* page
(web/pages_webhooks.py) builds the same model with
:func:`ketaclinic.http.inputs.model_from_form`, its event checkboxes turned into ``events``, so
an address, an event or a description is judged by the same rules on both paths.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Event = Literal["alert.urgent", "rems.deadline"]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=500, description="https:// address that "
                     "receives the signed POSTs")
    events: list[Event] = Field(min_length=1, max_length=2)
    description: str = Field("", max_length=200)
