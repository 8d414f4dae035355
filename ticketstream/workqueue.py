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

from ticketstream.privacy import mask_id_numbers, personal_kind
from ticketstream.schemas.tickets import TriagedTicket


def work_queue_copy(record: TriagedTicket) -> TriagedTicket:
    """The queue's copy of `record`: no ID number anywhere, everything else unchanged. A field
    named as an ID number in any spelling (`personal_kind`: `idNumber`, `身份證號` ...) is
    dropped, and ID numbers in the text of the customer's other extra fields are masked too."""
    customer = record.customer
    extra = customer.model_extra or {}
    has_id = customer.id_number is not None or any(
        personal_kind(k) == "id" or (isinstance(v, str) and mask_id_numbers(v) != v) for k, v in extra.items()
    )
    content = mask_id_numbers(record.content)
    if not has_id and content == record.content:
        return record  # most records: nothing to drop (the caller may reuse the record's own bytes)
    if has_id:
        fields = {
            k: mask_id_numbers(v) if isinstance(v, str) and k in extra else v
            for k, v in customer.model_dump(exclude={"id_number"}).items()
            if personal_kind(k) != "id"
        }
        customer = type(customer).model_validate(fields)
    return dataclasses.replace(record, customer=customer, content=content)
