"""schemas/events holds one JSON Schema per event, generated from events/; they must not drift."""

from __future__ import annotations

from pathlib import Path

from events.schema_export import asyncapi, event_schemas, file_name, render

FOLDER = Path(__file__).parents[2] / "schemas" / "events"


def test_every_event_has_its_committed_schema_and_it_matches_the_model() -> None:
    schemas = event_schemas()
    committed = {p.name for p in FOLDER.glob("*.schema.json")}
    assert committed == {file_name(t) for t in schemas}, (
        "schemas/events is out of date: run `leadflow schemas write` and commit the result")
    for event_type, schema in schemas.items():
        on_disk = (FOLDER / file_name(event_type)).read_text()
        assert on_disk == render(schema), (
            f"{file_name(event_type)} drifted from its model: run `leadflow schemas write`")


def test_schemas_describe_the_envelope_and_the_discriminator() -> None:
    for event_type, schema in event_schemas().items():
        required = set(schema["required"])
        assert {"event_id", "occurred_at", "recorded_at", "tenant_id"} <= required
        assert schema["properties"]["type"]["const"] == event_type


def test_the_asyncapi_document_lists_every_topic_and_event_and_matches_the_models() -> None:
    document = asyncapi()
    on_disk = (FOLDER.parent / "asyncapi.json").read_text()
    assert on_disk == render(document), "schemas/asyncapi.json drifted: run `leadflow schemas write`"
    addresses = {c["address"] for c in document["channels"].values()}
    from events import Topic

    assert addresses == {t.value for t in Topic}
    assert {m["name"] for m in document["components"]["messages"].values()} == set(event_schemas())
