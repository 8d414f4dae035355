"""What a team's work queue (`queue.<team>`) carries of a triaged ticket (DOMAIN §8).

A handler needs the customer's name and phone to call back, the region, the content and the
triage; nobody handling a complaint needs the national ID number (身份證號). Personal data is
"stored only where needed", and work queues are read by every team's handling system, so the
queue copy drops the ID number field (and ID-like extra fields a channel may have added) and
masks ID numbers a customer typed into the complaint text. The full record stays on
`tickets.accepted` (the audit history) and `tickets.triaged`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ticketstream.privacy import mask_id_numbers, personal_kind
from ticketstream.schemas.tickets import TriagedTicket


def work_queue_copy(record: TriagedTicket) -> TriagedTicket:
    """The queue's copy of `record`: no ID number anywhere, everything else unchanged. A field
    named as an ID number in any spelling (`personal_kind`: `idNumber`, `身份證號` ...) is
    dropped at any depth of the customer's extra fields, and ID numbers in their text and
    numbers are masked, as in the complaint's text."""
    customer = record.customer
    extra = customer.model_extra or {}
    clean = _without_ids(extra)
    has_id = customer.id_number is not None or clean != extra
    content = mask_id_numbers(record.content)
    if not has_id and content == record.content:
        return record  # most records: nothing to drop (the caller may reuse the record's own bytes)
    if has_id:
        customer = type(customer).model_validate(customer.model_dump(exclude={"id_number", *extra}) | clean)
    return dataclasses.replace(record, customer=customer, content=content)


def _without_ids(value: Any) -> Any:
    """A channel's extra customer field without ID numbers: ID-named keys dropped, ID numbers in
    text masked, an ID number sent as a JSON number masked into text."""
    if isinstance(value, dict):
        return {mask_id_numbers(k): _without_ids(v) for k, v in value.items() if personal_kind(k) != "id"}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    if isinstance(value, str):
        return mask_id_numbers(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        digits = str(int(value))  # a whole number sent as a float: 110101900307123.0 in the JSON
    elif isinstance(value, int) and not isinstance(value, bool):
        digits = str(value)
    else:
        return value
    masked = mask_id_numbers(digits)
    return value if masked == digits else masked
