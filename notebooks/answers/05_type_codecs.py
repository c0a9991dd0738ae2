"""Answers to notebook 05 (exercises 5.1 and 5.2): wrong ones its checkers must reject, right ones they accept."""

import asyncio
import functools
import json
from decimal import Decimal

import coursedb
import shop
from coursebook.answers import right, wrong


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


# --- friendly data: right for the values the author tried ---------------------------------------------


@wrong("5.1", hint="the codec must encode too")
async def init_shop_connection_decoder_only(conn) -> None:
    """The enum codec decodes to OrderStatus but encodes with str(): 'OrderStatus.PAID' is no label."""
    await coursedb.init_connection(conn)
    await conn.set_type_codec("order_status", schema="public", encoder=str, decoder=OrderStatus, format="text")  # noqa: F821


@wrong("5.1", hint="the jsonb codec must encode too")
async def init_shop_connection_decodes_jsonb_only(conn) -> None:
    """A jsonb decoder, and str() as its encoder: a dict is sent as its Python repr."""
    await conn.set_type_codec("jsonb", encoder=str, decoder=json.loads, schema="pg_catalog")
    await register_order_status(conn)  # noqa: F821 - defined earlier in the notebook


@wrong("5.2", hint="not as an object")
async def record_json_event_stores_the_text(conn, kind: str, payload_json: str):
    """Checks that the text is JSON, then stores the text itself: the codec makes it a JSON string."""
    json.loads(payload_json)
    return await conn.fetchval("INSERT INTO events (kind, payload) VALUES ($1, $2) RETURNING id", kind, payload_json)


@wrong("5.2", hint="the payload came back as")
async def record_json_event_ascii_only(conn, kind: str, payload_json: str):
    """Cleans the text first: drops every character outside ASCII."""
    payload = json.loads(payload_json.encode("ascii", "ignore").decode())
    return await conn.fetchval("INSERT INTO events (kind, payload) VALUES ($1, $2) RETURNING id", kind, payload)


@wrong("5.2", hint="the payload came back as")
async def record_json_event_money_as_int(conn, kind: str, payload_json: str):
    """Parses numbers as whole numbers, so 0.1 becomes 0."""
    payload = json.loads(payload_json, parse_float=lambda text: int(float(text)))
    return await conn.fetchval("INSERT INTO events (kind, payload) VALUES ($1, $2) RETURNING id", kind, payload)


# --- written blind by an outside learner: right for the values the checker sent, wrong for the shop's own -


@wrong("5.1", hint="'pending'")
async def init_shop_connection_encodes_members_only(conn) -> None:
    """The enum's encoder reads .value: OrderStatus members work, the plain 'pending' shop.place_order sends
    by default does not."""
    await coursedb.init_connection(conn)
    await conn.set_type_codec(
        "order_status",
        schema="public",
        encoder=lambda status: status.value,
        decoder=OrderStatus,  # noqa: F821 - defined earlier in the notebook
        format="text",
    )


@wrong("5.1", hint="'pending'")
async def init_shop_connection_by_member_name(conn) -> None:
    """Encodes a member by its name and decodes a label by name: members round-trip, a str label is refused."""
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec(
        "order_status",
        schema="public",
        encoder=lambda member: member.name.lower(),
        decoder=lambda label: OrderStatus[label.upper()],  # noqa: F821 - defined earlier in the notebook
        format="text",
    )


@wrong("5.2", hint="leave the connection's codecs as they were")
async def record_json_event_text_codec(conn, kind: str, payload_json: str):
    """Checks the text is JSON, then swaps the connection's jsonb codec for one that passes text through:
    the connection keeps it, and the next dict anyone sends on it is refused."""
    json.loads(payload_json)
    await conn.set_type_codec("jsonb", schema="pg_catalog", encoder=lambda text: text, decoder=json.loads)
    return await conn.fetchval("INSERT INTO events (kind, payload) VALUES ($1, $2) RETURNING id", kind, payload_json)


@wrong("5.2", hint="is not JSON, but it was stored anyway")
async def record_json_event_lenient(conn, kind: str, payload_json: str):
    """json.loads(strict=False), to be lenient: a raw line break inside a string, which JSON forbids, is stored."""
    payload = json.loads(payload_json, strict=False)
    return await conn.fetchval("INSERT INTO events (kind, payload) VALUES ($1, $2) RETURNING id", kind, payload)


# --- written blind by outside learners (round 2): each breaks a general property --------------------------


@wrong("5.1", hint="the same types")
async def init_shop_connection_decimal_floats(conn) -> None:
    """json.loads(parse_float=Decimal) 'to keep money exact': 0.1 reads back as Decimal('0.1'), which json.dumps
    cannot send back."""
    for pg_type in ("json", "jsonb"):
        decoder = functools.partial(json.loads, parse_float=Decimal)
        await conn.set_type_codec(pg_type, encoder=json.dumps, decoder=decoder, schema="pg_catalog")
    await register_order_status(conn)  # noqa: F821 - defined earlier in the notebook


@wrong("5.1", hint="as json.dumps writes it")
async def init_shop_connection_passthrough_str(conn) -> None:
    """A str is sent as it is, 'already JSON': the string 'pro' is refused, the string '123' stored as a number."""

    def encode(value):
        return value if isinstance(value, str) else json.dumps(value)

    for pg_type in ("json", "jsonb"):
        await conn.set_type_codec(pg_type, encoder=encode, decoder=json.loads, schema="pg_catalog")
    await register_order_status(conn)  # noqa: F821 - defined earlier in the notebook


@wrong("5.1", hint="refuse what JSON cannot hold")
async def init_shop_connection_dumps_default_str(conn) -> None:
    """json.dumps(default=str) 'so nothing fails to encode': a Decimal is stored as the string '10.50', a set as
    "{'a'}"."""
    for pg_type in ("json", "jsonb"):
        encoder = functools.partial(json.dumps, default=str)
        await conn.set_type_codec(pg_type, encoder=encoder, decoder=json.loads, schema="pg_catalog")
    await register_order_status(conn)  # noqa: F821 - defined earlier in the notebook


@wrong("5.2", hint="whitespace")
async def record_json_event_first_char_check(conn, kind: str, payload_json: str):
    """'An object or an array' checked by the first character: JSON with whitespace before it is refused."""
    if not payload_json.startswith(("{", "[")):
        raise ValueError("the payload must be a JSON object or array")
    payload = json.loads(payload_json)
    return await conn.fetchval("INSERT INTO events (kind, payload) VALUES ($1, $2) RETURNING id", kind, payload)


@wrong("5.2", hint="the id of another event already there")
async def record_json_event_newest_event_id(conn, kind: str, payload_json: str):
    """Inserts, then takes 'the newest event' as its id: created_at orders events, it identifies none of them."""
    await conn.execute("INSERT INTO events (kind, payload) VALUES ($1, $2)", kind, json.loads(payload_json))
    return await conn.fetchval("SELECT id FROM events ORDER BY created_at DESC LIMIT 1")


@wrong("5.2", hint="16-kb")
async def record_json_event_size_limit(conn, kind: str, payload_json: str):
    """Refuses payloads over 1000 characters ('guard against huge bodies'): a valid 2 KB object is refused."""
    if len(payload_json) > 1000:
        raise ValueError("payload too large")
    payload = json.loads(payload_json)
    return await conn.fetchval("INSERT INTO events (kind, payload) VALUES ($1, $2) RETURNING id", kind, payload)


# --- near-misses of our own: types that compare equal, labels by case, the id by kind, exact money --------


@wrong("5.1", hint="the same types")
async def init_shop_connection_numbers_as_floats(conn) -> None:
    """Reads every JSON number as a float ('one number type'): 3 == 3.0 in Python, yet seats: 3 comes back 3.0,
    and a big whole number loses digits."""
    for pg_type in ("json", "jsonb"):
        decoder = functools.partial(json.loads, parse_int=float)
        await conn.set_type_codec(pg_type, encoder=json.dumps, decoder=decoder, schema="pg_catalog")
    await register_order_status(conn)  # noqa: F821 - defined earlier in the notebook


@wrong("5.1", hint="no label of order_status")
async def init_shop_connection_labels_any_case(conn) -> None:
    """Takes a label in any case ('PAID' from a form): a str the enum does not have is stored as one it has."""
    await coursedb.init_connection(conn)
    await conn.set_type_codec(
        "order_status",
        schema="public",
        encoder=lambda value: OrderStatus(value.lower() if isinstance(value, str) else value).value,  # noqa: F821
        decoder=OrderStatus,  # noqa: F821 - defined earlier in the notebook
        format="text",
    )


@wrong("5.2", hint="the id of another event already there")
async def record_json_event_newest_of_its_kind(conn, kind: str, payload_json: str):
    """Inserts, then takes the newest event of the same kind: another event of that kind may be 'newer'."""
    await conn.execute("INSERT INTO events (kind, payload) VALUES ($1, $2)", kind, json.loads(payload_json))
    return await conn.fetchval("SELECT id FROM events WHERE kind = $1 ORDER BY created_at DESC LIMIT 1", kind)


@wrong("5.2", hint="the payload came back as")
async def record_json_event_exact_money(conn, kind: str, payload_json: str):
    """json.loads(parse_float=Decimal) 'to keep money exact', then the numbers as strings so the codec can send
    them: 0.1 is stored as the string "0.1"."""

    def exact(value):
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, dict):
            return {key: exact(item) for key, item in value.items()}
        if isinstance(value, list):
            return [exact(item) for item in value]
        return value

    payload = exact(json.loads(payload_json, parse_float=Decimal))
    return await conn.fetchval("INSERT INTO events (kind, payload) VALUES ($1, $2) RETURNING id", kind, payload)


@wrong("5.2", hint="as given")
async def record_json_event_tidies_the_kind(conn, kind: str, payload_json: str):
    """'Tidies' the kind (strip, lower): ' Signup' is stored as 'signup', not as given."""
    payload = json.loads(payload_json)
    return await conn.fetchval(
        "INSERT INTO events (kind, payload) VALUES ($1, $2) RETURNING id", kind.strip().lower(), payload
    )


# --- the numbers go through Python floats: right for every payload with fewer than about 16 digits -------


@wrong("5.2", hint="Python float")
async def record_json_event_loads_then_insert(conn, kind: str, payload_json: str):
    """json.loads, then a plain INSERT through the codec (written blind by an outside learner; the course's own
    model answer until it was found): JSON numbers become floats, so 12345678901234567890.5 is stored as
    12345678901234567000, 1.0000000000000001 as 1.0, and 1e400 (inf) is refused."""
    payload = json.loads(payload_json)
    row = await conn.fetchrow("INSERT INTO events (kind, payload) VALUES ($1, $2) RETURNING id", kind, payload)
    return row["id"]


@wrong("5.2", hint="Python float")
async def record_json_event_through_the_shop(conn, kind: str, payload_json: str):
    """json.loads, then the shop's own record_event, which passes the objects to the codec: the same floats."""
    return await shop.record_event(conn, kind, json.loads(payload_json))


@wrong("5.2", hint="Python float")
async def record_json_event_parsed_then_read_back(conn, kind: str, payload_json: str):
    """Lets the server parse the text, but reads the result back through the codec and sends that: exact on the
    server, rounded to floats on the way through Python."""
    payload = await conn.fetchval("SELECT $1::text::jsonb", payload_json)
    return await conn.fetchval("INSERT INTO events (kind, payload) VALUES ($1, $2) RETURNING id", kind, payload)


@wrong("5.2", hint="Python float")
async def record_json_event_decimal_default_float(conn, kind: str, payload_json: str):
    """Parses fractions as Decimal to keep their digits, writes the JSON again with json.dumps(default=float)
    (json.dumps cannot write a Decimal) and lets the server parse that: default=float loses the digits again."""
    payload = json.loads(payload_json, parse_float=Decimal)
    return await conn.fetchval(
        "INSERT INTO events (kind, payload) VALUES ($1, $2::text::jsonb) RETURNING id",
        kind,
        json.dumps(payload, default=float),
    )


@wrong("5.2", hint="not as an object")
async def record_json_event_cast_from_json(conn, kind: str, payload_json: str):
    """Casts on the server, but through json ($2::json::jsonb): the parameter's type is then json, whose codec
    encodes the text again, and a JSON string is stored."""
    return await conn.fetchval(
        "INSERT INTO events (kind, payload) VALUES ($1, $2::json::jsonb) RETURNING id", kind, payload_json
    )


# --- right answers, written another way than the model -------------------------------------------


@right("5.1")
async def init_shop_connection_by_hand(conn) -> None:
    """Every codec spelled out: json and jsonb with the json module, the enum with its value (a label as it is)."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, schema="pg_catalog", encoder=json.dumps, decoder=json.loads)
    await conn.set_type_codec(
        "order_status",
        schema="public",
        encoder=lambda status: getattr(status, "value", status),
        decoder=OrderStatus,  # noqa: F821 - defined earlier in the notebook
        format="text",
    )


@right("5.1")
async def init_shop_connection_enum_first(conn) -> None:
    """The enum codec first, then the course's json codecs."""
    await register_order_status(conn)  # noqa: F821 - defined earlier in the notebook
    await coursedb.init_connection(conn)


@right("5.2")
async def record_json_event_prepared_text(conn, kind: str, payload_json: str):
    """A prepared statement whose second parameter is text, cast to jsonb by the server: the codec never sees it."""
    statement = await conn.prepare(
        "INSERT INTO events (kind, payload) VALUES ($1, CAST($2 AS text)::jsonb) RETURNING id"
    )
    return await statement.fetchval(kind, payload_json)


@right("5.2")
async def record_json_event_parsed_in_a_cte(conn, kind: str, payload_json: str):
    """Checks the text in Python first (json.loads raises on what is no JSON), then sends the text itself, parsed by
    the server in a CTE, and takes the id from the returned row: the floats json.loads made are never stored."""
    json.loads(payload_json)
    row = await conn.fetchrow(
        """
        WITH parsed AS (SELECT $2::text::jsonb AS payload)
        INSERT INTO events (kind, payload) SELECT $1, payload FROM parsed RETURNING *
        """,
        kind,
        payload_json,
    )
    return row["id"]


@right("5.1")
async def init_shop_connection_binary_jsonb(conn) -> None:
    """jsonb in asyncpg's binary format (a version byte 1, then the JSON text), and the notebook's enum codec."""

    def encode(value):
        return b"\x01" + json.dumps(value).encode()

    def decode(data):
        return json.loads(data[1:].decode())

    await conn.set_type_codec("jsonb", encoder=encode, decoder=decode, schema="pg_catalog", format="binary")
    await register_order_status(conn)  # noqa: F821 - defined earlier in the notebook


@right("5.1")
async def init_shop_connection_gathered(conn) -> None:
    """The two hooks at once, through asyncio.gather: asyncpg runs their introspection queries one after the other."""
    await asyncio.gather(coursedb.init_connection(conn), register_order_status(conn))  # noqa: F821
