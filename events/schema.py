"""JSON Schema of every event, generated from the Structs (file via `sq schema`, HTTP via the gateway)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from events.codec import EVENT_TYPES
from events.trading import CancelIntent, OrderIntent

# Outside publishers may omit these on intents (the intake fills them), so the published
# schema must not demand them.
_OPTIONAL_FROM_OUTSIDE: dict[type, tuple[str, ...]] = {OrderIntent: ("type", "id", "ts"),
                                                       CancelIntent: ("type", "id", "ts")}


def event_schema(event_type: type) -> dict[str, Any]:
    """A standalone JSON Schema (2020-12) for one event type."""
    schemas, components = msgspec.json.schema_components([event_type], ref_template="#/$defs/{name}")
    root = dict(components[event_type.__name__])
    defs = {name: body for name, body in components.items() if name != event_type.__name__}
    optional = _OPTIONAL_FROM_OUTSIDE.get(event_type, ())
    if optional:
        root["required"] = [field for field in root.get("required", []) if field not in optional]
    document: dict[str, Any] = {"$schema": "https://json-schema.org/draft/2020-12/schema", **root}
    if defs:
        document["$defs"] = defs
    del schemas
    return document


def all_schemas() -> dict[str, dict[str, Any]]:
    """Schema of every event type, keyed by type name."""
    return {event_type.__name__: event_schema(event_type) for event_type in EVENT_TYPES}


def write_schemas(out_dir: Path) -> list[Path]:
    """Write one `<Type>.schema.json` per event into `out_dir`; return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in all_schemas().items():
        path = out_dir / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written
