"""Answers to notebook 05 (exercises 5.1 and 5.2): wrong ones its checkers must reject, right ones they accept."""

import json

import coursedb
from coursebook.answers import wrong


@wrong("5.1", hint="the OrderStatus codec")
async def init_shop_connection_json_only(conn) -> None:
    """Only the course's json codecs."""
    await coursedb.init_connection(conn)


@wrong("5.1", hint="needs a codec for jsonb")
async def init_shop_connection_enum_only(conn) -> None:
    """Only the enum codec."""
    await register_order_status(conn)  # noqa: F821 - defined earlier in the notebook


@wrong("5.1", hint="pg_catalog")
async def init_shop_connection_wrong_schema(conn) -> None:
    """Registers jsonb by hand, in the default schema 'public'."""
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads)
    await register_order_status(conn)  # noqa: F821 - defined earlier in the notebook


@wrong("5.1", hint="needs a codec for jsonb")
async def init_shop_connection_json_not_jsonb(conn) -> None:
    """A codec for json, none for jsonb."""
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await register_order_status(conn)  # noqa: F821 - defined earlier in the notebook


@wrong("5.1", hint="needs a codec for jsonb")
async def init_shop_connection_empty_body(conn) -> None:
    """Ran the cell without writing a body."""


@wrong("5.2", hint="double-encoded")
async def record_json_event_passes_the_text(conn, kind: str, payload_json: str):
    """Passes the JSON text to a parameter whose codec encodes it again."""
    return await conn.fetchval("INSERT INTO events (kind, payload) VALUES ($1, $2) RETURNING id", kind, payload_json)


@wrong("5.2", hint="double-encoded")
async def record_json_event_dumps(conn, kind: str, payload_json: str):
    """json.dumps on text that already is JSON."""
    return await conn.fetchval(
        "INSERT INTO events (kind, payload) VALUES ($1, $2) RETURNING id", kind, json.dumps(payload_json)
    )


@wrong("5.2", hint="was stored anyway")
async def record_json_event_forgiving(conn, kind: str, payload_json: str):
    """Decodes when it can, stores the raw text when it can't."""
    try:
        payload = json.loads(payload_json)
    except ValueError:
        payload = payload_json
    return await conn.fetchval("INSERT INTO events (kind, payload) VALUES ($1, $2) RETURNING id", kind, payload)


@wrong("5.2", hint="the payload came back as {}")
async def record_json_event_hard_coded(conn, kind: str, payload_json: str):
    """Stores an empty object, whatever came in."""
    return await conn.fetchval("INSERT INTO events (kind, payload) VALUES ($1, $2) RETURNING id", kind, {})
