"""JSON Schema files for channel systems (one per event type, plus the envelope of any event) and
for archive consumers (the records of tickets.state, tickets.accepted, sla.events, incidents)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, create_model

from ticketstream.schemas.events import DATA_MODELS, Event, EventType, Identifier


def _schema_for(event_type: EventType) -> dict[str, Any]:
    model = create_model(
        "Event_" + event_type.value.replace(".", "_"),
        __doc__=f"A `{event_type.value}` event, keyed by ticket_id on tickets.inbound.",
        event_id=(Identifier, ...),
        type=(Literal[event_type.value], ...),  # type: ignore[arg-type]
        ticket_id=(Identifier, ...),
        occurred_at=(AwareDatetime, ...),
        schema_version=(Literal[1], ...),
        data=(DATA_MODELS[event_type], ...),
    )
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"ticketstream/{event_type.value}.schema.json"
    return schema


def export_schemas(directory: Path) -> list[Path]:
    """Write `<type>.schema.json` for every event type and `event.schema.json` (any type)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type in EventType:
        path = directory / f"{event_type.value}.schema.json"
        path.write_text(json.dumps(_schema_for(event_type), indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    envelope = Event.model_json_schema()
    envelope["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    path = directory / "event.schema.json"
    path.write_text(json.dumps(envelope, indent=2, ensure_ascii=False) + "\n")
    written.append(path)
    return written


def export_feed_schemas(directory: Path) -> list[Path]:
    """`topics/<topic>.schema.json` for archive consumers: tickets.state, tickets.accepted (the
    history: the inbound envelope as intake forwards it), sla.events, incidents."""
    from ticketstream.schemas.feed import FEED

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    models = {**FEED, "tickets.accepted": Event}
    for topic, model in sorted(models.items()):
        schema = model.model_json_schema()  # type: ignore[attr-defined]
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"ticketstream/topics/{topic}.schema.json"
        path = directory / f"{topic}.schema.json"
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    return written
