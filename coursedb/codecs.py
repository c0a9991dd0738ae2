"""Type codecs every course connection gets, registered through the pool's ``init=``."""

from __future__ import annotations

import json

import asyncpg


async def init_connection(conn: asyncpg.Connection) -> None:
    """Decode json/jsonb to Python objects and encode Python objects to json/jsonb.

    Pass it as ``asyncpg.create_pool(..., init=init_connection)``: the pool runs it on every
    connection it opens, so no connection is ever without the codecs. Setting a codec on
    one connection you happened to acquire leaves the pool's other connections without it.
    """
    for pg_type in ("json", "jsonb"):
        await conn.set_type_codec(pg_type, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
