# %% [markdown]
# # 05 · Type codecs: what comes back from PostgreSQL
#
# **You will learn**
# - what an `asyncpg.Record` is, and how to get a `dict` from it;
# - why `json`/`jsonb` arrive as `str` until you register a codec, and where to register it;
# - the double-encoding bug: a JSON *string* sent through a `json.dumps` encoder;
# - that a codec belongs to one connection, and how to test that every pooled connection has it;
# - which Python types `uuid`, `numeric`, `timestamptz` and enums become, and why `float` is wrong for money;
# - how to write a codec of your own.
#
# *About 55 minutes.*

# %% [markdown]
# ## The idea
#
# PostgreSQL sends every value with its type. asyncpg turns each type into a Python object with a
# **codec**: a decoder for results, an encoder for query arguments. Most types have a built-in codec.
# `json` and `jsonb` are left as text, and enums you create yourself arrive as plain strings.
#
# `conn.set_type_codec()` adds or replaces a codec, **on that one connection**. That last part is the
# source of the classic bug, and the reason the course's pool registers its codecs in `init=`.

# %%
from coursedb.notebook import setup

db_url = setup()

# %% [markdown]
# ## Live code: what each type becomes
#
# A connection with no codecs of ours: asyncpg's defaults. One value of each type the course uses:

# %%
import asyncpg

plain = await asyncpg.connect(db_url)
sample = await plain.fetchrow(
    """
    SELECT 42                                              AS "integer",
           19.99::numeric(10, 2)                           AS "numeric",
           'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid    AS "uuid",
           '2024-03-01 12:00:00+01'::timestamptz           AS "timestamptz",
           '{"plan": "pro"}'::jsonb                        AS "jsonb",
           'paid'::order_status                            AS "order_status"
    """
)
for column, value in sample.items():
    print(f"{column:>12} -> {type(value).__name__:<9} {value!r}")

# %% [markdown]
# Two of those need care when you compare them in a test:

# %%
import uuid
from decimal import Decimal

print("numeric == 19.99:           ", sample["numeric"] == 19.99)
print('numeric == Decimal("19.99"):', sample["numeric"] == Decimal("19.99"))
print("uuid == its text:           ", sample["uuid"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
print("uuid == uuid.UUID(its text):", sample["uuid"] == uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"))

# %% [markdown]
# | PostgreSQL | Python (asyncpg's default) | mind |
# |---|---|---|
# | `integer` | `int` | |
# | `numeric` | `decimal.Decimal` | exact; compare with `Decimal("19.99")`, never a `float` |
# | `uuid` | `uuid.UUID` | not equal to its text; compare with `uuid.UUID(...)` |
# | `timestamptz` | aware `datetime`, always in UTC | the `+01` input became `11:00 UTC` |
# | `jsonb` | `str` | until you register a codec |
# | `order_status` (an enum) | `str` | until you register a codec |

# %% [markdown]
# ## Records are not dicts
#
# `fetch` and `fetchrow` return `asyncpg.Record`: you index it by column name or by position, and it
# has `.get()`, `.keys()` and `.items()` like a mapping. But it is not a `dict`, and has no attribute access.

# %%
row = await plain.fetchrow("SELECT 1 AS id, 'ada@example.com' AS email")
print("a dict?", isinstance(row, dict))
print("by name and by position:", row["email"], row[1])
print("keys:", list(row.keys()), "| get with a default:", row.get("phone", "n/a"))
print("attribute access?", hasattr(row, "email"))
print("as a dict:", dict(row))

# %% [markdown]
# `dict(row)` is what you want when the result leaves the data layer: for JSON responses, or for
# comparing a whole row in a test (`assert dict(row) == {...}` gives a readable diff).

# %% [markdown]
# ## json and jsonb without a codec
#
# Results come back as text, and a Python `dict` cannot be sent at all:

# %%
print(repr(await plain.fetchval("""SELECT '{"plan": "pro"}'::jsonb""")))
try:
    await plain.fetchval("SELECT $1::jsonb", {"plan": "pro"})
except asyncpg.DataError as exc:
    print("DataError:", exc)

# %% [markdown]
# ## Pitfall: the double-encoded JSON string
#
# The article registered `json.dumps` as the encoder and then passed a string that already *was*
# JSON. The encoder does its job and encodes that string again, as a JSON **string**:

# %%
import json

await plain.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
stored = await plain.fetchrow(
    "SELECT jsonb_typeof($1::jsonb) AS kind, $1::jsonb::text AS stored_text, $1::jsonb AS decoded",
    '{"key": "value"}',
)
print("jsonb_typeof:", stored["kind"])
print("stored text: ", stored["stored_text"])
print("decoded:     ", repr(stored["decoded"]), "a", type(stored["decoded"]).__name__)

# %% [markdown]
# The server holds a string with quotes inside, not an object, and the decoder faithfully hands
# back a `str`. Here is the article's test. Its `set_type_codec` call is left out because the course's
# pool already registers the same codec on every connection:

# %% tags=["raises-exception"]
# %%ipytest --fails-on-purpose


async def test_custom_json_codec_as_the_article_wrote_it(db_conn):
    await db_conn.execute("CREATE TEMP TABLE json_test (data jsonb)")  # gone with the rollback
    await db_conn.execute("INSERT INTO json_test VALUES ($1::jsonb)", '{"key": "value"}')
    row = await db_conn.fetchrow("SELECT data FROM json_test")
    assert isinstance(row["data"], dict)


# %% [markdown]
# **The right way:** with a json codec registered, pass Python objects (`dict`, `list`, numbers) and
# let the codec encode them once. `shop.record_event` does exactly that:

# %%
# %%ipytest
import uuid

from shop import record_event


async def test_jsonb_round_trips_a_dict(db_conn):
    event_id = await record_event(db_conn, "signup", {"plan": "pro", "seats": 3})
    assert isinstance(event_id, uuid.UUID)
    row = await db_conn.fetchrow("SELECT jsonb_typeof(payload) AS kind, payload FROM events WHERE id = $1", event_id)
    assert row["kind"] == "object"
    assert row["payload"] == {"plan": "pro", "seats": 3}


# %% [markdown]
# ### Numbers: exact in jsonb, rounded in a float
#
# jsonb keeps every JSON number exactly as written (it stores them as `numeric`). The codec goes through Python's
# `float` for any number with a fraction or an exponent, and a `float` holds about 16 significant digits:

# %%
row = await plain.fetchrow(
    """
    SELECT payload::text AS as_text, payload AS through_the_codec
    FROM (VALUES ('{"amount": 12345678901234567890.5, "ratio": 1.0000000000000001}'::jsonb)) AS t(payload)
    """
)
print("jsonb holds:      ", row["as_text"])
print("the codec returns:", row["through_the_codec"])

# %% [markdown]
# Both numbers were rounded to the nearest `float`. The same happens on the way in: JSON text turned into Python
# objects with `json.loads` is rounded before the codec sends it, and a number past a float's range (`1e400`)
# becomes `inf`, which is no JSON, so the server refuses it. Whole numbers stay exact (`int` has no limit). For
# JSON that carries amounts or long decimal ids, keep its numbers away from `float`: exercise 5.2.

# %% [markdown]
# ## A codec belongs to one connection
#
# The article also set the codec on the connection it had just acquired from the pool. The pool's
# other connections know nothing about it. A pool of two, both connections held at once:

# %%
pool_of_two = await asyncpg.create_pool(db_url, min_size=2, max_size=2)
async with pool_of_two.acquire() as first, pool_of_two.acquire() as second:
    await first.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    print("first: ", repr(await first.fetchval("""SELECT '{"a": 1}'::jsonb""")))
    print("second:", repr(await second.fetchval("""SELECT '{"a": 1}'::jsonb""")))
await pool_of_two.close()

# %% [markdown]
# Code that happens to get `second` receives a `str`. Which connection a request gets depends on
# what else is running at that moment, so in an application this bug comes and goes.
# The fix is the pool's `init=` hook: the pool calls it for **every** connection it opens. The course's
# hook is [`coursedb.init_connection`](../coursedb/codecs.py), and the `db_pool` fixture uses it:
#
# ```python
# pool = await asyncpg.create_pool(dsn, init=coursedb.init_connection)
# ```
#
# ### Testing that every connection has the codec
#
# A test that acquires one connection, uses it and gives it back checks one connection only:
# the pool hands the same one out again and again.

# %%
import coursedb

pool = await asyncpg.create_pool(db_url, min_size=2, max_size=5, init=coursedb.init_connection)
backend_pids = []
for _ in range(5):
    async with pool.acquire() as conn:
        backend_pids.append(await conn.fetchval("SELECT pg_backend_pid()"))
await pool.close()
print("5 acquisitions, distinct connections:", len(set(backend_pids)))

# %% [markdown]
# So the test must **hold every connection the pool may open, at the same time**, and check each.
# A helper that does that and reports what each connection (by backend pid) decoded:

# %%
import contextlib


async def jsonb_on_every_connection(pool) -> dict:
    async with contextlib.AsyncExitStack() as held:
        conns = [await held.enter_async_context(pool.acquire()) for _ in range(pool.get_max_size())]
        return {
            await conn.fetchval("SELECT pg_backend_pid()"): await conn.fetchval("""SELECT '{"ok": true}'::jsonb""")
            for conn in conns
        }


# %%
# %%ipytest


async def test_every_connection_of_db_pool_decodes_jsonb(db_pool):
    decoded = await jsonb_on_every_connection(db_pool)
    assert len(decoded) == db_pool.get_max_size()  # really every connection, each counted once
    assert [value for value in decoded.values() if value != {"ok": True}] == []


# %% [markdown]
# Can this test fail? Point it at a pool set up the article's way: codec registered on the one
# connection acquired first.

# %% tags=["raises-exception"]
# %%ipytest --fails-on-purpose
import json

import asyncpg
import pytest


@pytest.fixture
async def seed_style_pool(db_url):
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    async with pool.acquire() as conn:
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    yield pool
    await pool.close()


async def test_every_connection_of_the_seed_style_pool_decodes_jsonb(seed_style_pool):
    decoded = await jsonb_on_every_connection(seed_style_pool)
    assert [value for value in decoded.values() if value != {"ok": True}] == []


# %% [markdown]
# One connection decodes, the other returns `str`. That is the bug, caught.

# %% [markdown]
# ## numeric: `Decimal`, and why not `float`
#
# asyncpg accepts a `float` for a `numeric` argument, and sends its exact binary value, which is
# rarely the number you typed. A `str` or `Decimal` arrives exactly:

# %%
await plain.fetchrow(
    "SELECT $1::numeric AS from_float, $2::numeric AS from_str, $1::numeric(10, 2) AS float_in_a_money_column",
    0.1,
    "0.1",
)

# %% [markdown]
# A `numeric(10, 2)` column like `orders.total` rounds that away, which hides the problem until
# someone adds floats up in Python. Sums done in `numeric` stay exact:

# %%
print("float in Python:  ", 0.1 + 0.2)
print("numeric in SQL:   ", repr(await plain.fetchval("SELECT sum(x) FROM unnest($1::numeric[]) AS x", ["0.1", "0.2"])))

# %% [markdown]
# In tests: pass amounts as `Decimal("19.99")` or `"19.99"`, and compare with `Decimal("19.99")`.

# %% [markdown]
# ## timestamptz: always an aware `datetime` in UTC
#
# The server's `TimeZone` setting changes how a `timestamptz` is *written as text*, not the instant.
# asyncpg receives the instant and returns it in UTC whatever the setting (here `SET TIME ZONE` on our
# own connection, so the output does not depend on the server's default):

# %%
MOMENT = "SELECT ts, ts::text AS as_text FROM (VALUES ('2024-03-01 12:00:00+01'::timestamptz)) AS t(ts)"
for zone in ("UTC", "Europe/Berlin"):
    await plain.execute(f"SET TIME ZONE '{zone}'")
    moment = await plain.fetchrow(MOMENT)
    print(f"{zone:>13}: text {moment['as_text']!r:26} python {moment['ts']!r}")

# %% [markdown]
# So compare `timestamptz` values with aware datetimes
# (`datetime(2024, 3, 1, 11, 0, tzinfo=timezone.utc)`), and never with strings.

# %% [markdown]
# ## Enums: plain `str`, checked by the server
#
# `order_status` has four labels (`pending`, `paid`, `shipped`, `cancelled`). Without a codec you send
# and receive strings, and the server rejects a label it does not know:

# %%
print(repr(await plain.fetchval("SELECT $1::order_status", "shipped")))
try:
    await plain.fetchval("SELECT $1::order_status", "refunded")
except asyncpg.InvalidTextRepresentationError as exc:
    print("InvalidTextRepresentationError:", exc)

# %% [markdown]
# ## A codec of your own: `order_status` as a Python `Enum`
#
# `set_type_codec` works for any type, including your own. With `format="text"` the encoder returns
# the text PostgreSQL expects and the decoder receives that text. Here: a Python `Enum` for the
# order status, which also rejects a bad label *before* the query is sent.

# %%
import enum


class OrderStatus(enum.Enum):
    PENDING = "pending"
    PAID = "paid"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


async def register_order_status(conn):
    await conn.set_type_codec(
        "order_status",
        schema="public",
        encoder=lambda value: OrderStatus(value).value,  # accepts OrderStatus.PAID and "paid"
        decoder=OrderStatus,
        format="text",
    )


await register_order_status(plain)
print(repr(await plain.fetchval("SELECT $1::order_status", OrderStatus.PAID)))
print(repr(await plain.fetchval("SELECT '{paid,shipped}'::order_status[]")))  # arrays use it too
try:
    await plain.fetchval("SELECT $1::order_status", "refunded")
except asyncpg.DataError as exc:
    print("DataError:", exc)

# %% [markdown]
# Like every codec, this one lives on `plain` only. For a pool it belongs in `init=`, next to the
# json codecs. That is your exercise. `plain` has done its job; close it (a room's shared server counts
# every open connection):

# %%
await plain.close()

# %% [markdown]
# ## Exercise 5.1: one `init=` hook for the shop (warm-up)
#
# Write `init_shop_connection(conn)` for `asyncpg.create_pool(..., init=init_shop_connection)`. Every
# connection must decode `jsonb` to Python objects (as `coursedb.init_connection` does) **and**
# `order_status` to `OrderStatus`, and accept as an `order_status` argument an `OrderStatus` as well as its label,
# a `str` (`shop.place_order` sends `'pending'`). The checker tests a single connection, then every connection of
# a pool, through the shop's own functions too.


# %% tags=["exercise"] exercise="5.1"
# Exercise 5.1: an init hook with both codecs
async def init_shop_connection(conn) -> None:
    raise NotImplementedError("Exercise 5.1: one hook, two kinds of codec: both are defined in this notebook")


# %% tags=["solution"] exercise="5.1"
import coursedb


async def init_shop_connection(conn) -> None:
    await coursedb.init_connection(conn)  # json and jsonb
    await register_order_status(conn)


# %% tags=["checker", "raises-exception"] exercise="5.1"
# %%ipytest --exercise 5.1
import datetime
import json
import uuid
from decimal import Decimal

import asyncpg
import pytest
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

import shop
from coursedb.checks import examples

VALUES = {"plan": "pro", "seats": 3, "ratio": 0.25, "tags": ["a", "ü", "😀"], "nested": {"ok": True, "none": None}}


async def initialised(conn) -> None:
    try:
        await init_shop_connection(conn)
    except ValueError as exc:
        if "unknown type" not in str(exc):
            raise
        hint = f"set_type_codec could not find a type ({exc}): jsonb and json live in the schema pg_catalog"
        pytest.fail(hint, pytrace=False)


async def check_codecs(conn) -> None:
    got = await conn.fetchval("SELECT $1::text::jsonb", json.dumps(VALUES))
    kind = type(got).__name__
    assert got == VALUES, f"jsonb came back as {got!r}, a {kind}: the connection needs a codec for jsonb"
    try:
        sent = await conn.fetchval("SELECT $1::jsonb::text", VALUES)
    except (asyncpg.PostgresError, asyncpg.DataError, TypeError) as exc:
        pytest.fail(f"a dict sent as jsonb was refused ({exc}): the jsonb codec must encode too", pytrace=False)
    assert json.loads(sent) == VALUES, f"a dict sent as jsonb arrived as {sent}: the jsonb codec must encode too"
    labels = await conn.fetch("SELECT unnest(enum_range(NULL::order_status)) AS status")
    decoded = [row["status"] for row in labels]
    assert decoded == list(OrderStatus), f"order_status came back as {decoded!r}: the OrderStatus codec is missing"
    for status in OrderStatus:
        try:
            back = await conn.fetchval("SELECT $1::order_status", status)
        except (asyncpg.PostgresError, asyncpg.DataError) as exc:
            pytest.fail(
                f"OrderStatus.{status.name} was refused as an argument ({exc}): the codec must encode too",
                pytrace=False,
            )
        assert back is status, f"OrderStatus.{status.name} sent and read back gave {back!r}: the codec must encode too"
        try:
            back = await conn.fetchval("SELECT $1::order_status", status.value)
        except (asyncpg.PostgresError, asyncpg.DataError) as exc:
            pytest.fail(
                f"the label {status.value!r}, a str, was refused as an order_status ({exc}): shop.place_order sends "
                "'pending' as a str, so the encoder must take an OrderStatus or its label",
                pytrace=False,
            )
        assert back is status, f"the label {status.value!r} sent and read back gave {back!r}, not {status}"


async def test_init_gives_one_connection_both_codecs(db_url):
    """A connection the hook ran on decodes and encodes jsonb as Python objects and order_status as OrderStatus."""
    conn = await asyncpg.connect(db_url)
    try:
        await initialised(conn)
        await check_codecs(conn)
    finally:
        await conn.close()


@pytest.fixture
async def shop_conn(db_url):
    """One connection the hook ran on, for every example of a test (nothing the examples do changes it)."""
    conn = await asyncpg.connect(db_url)
    try:
        await initialised(conn)
        yield conn
    finally:
        await conn.close()


def same(got, expected) -> bool:
    """Equal, and of the same kind all the way down: 3.0 is not 3, Decimal('0.1') is not 0.1, '1' is not 1."""
    if isinstance(expected, dict):
        return (
            isinstance(got, dict)
            and got.keys() == expected.keys()
            and all(same(got[k], v) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return isinstance(got, list) and len(got) == len(expected) and all(map(same, got, expected))
    return type(got) is type(expected) and got == expected


TEXT = st.text(st.characters(exclude_characters="\x00"), max_size=6)  # jsonb cannot hold \u0000
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)


@settings(examples(15), phases=[Phase.explicit, Phase.generate])
@given(value=ANY_JSON)
@example(value={"a": 0.1, "seats": 3, "big": 2**70, "ok": True})
@example(value="pro")
@example(value="123")
@example(value=["ü", "😀", " spaced ", "line\nbreak"])
async def test_any_json_value_goes_both_ways(shop_conn, value):
    """Any JSON value (a string or a number alone too, fractions, whole numbers of any size, Unicode) is sent as
    jsonb exactly as json.dumps writes it, and jsonb is read back exactly as json.loads reads it: 3 stays an int,
    0.1 a float, '123' a string."""
    text = json.dumps(value)
    want = json.loads(await shop_conn.fetchval("SELECT $1::text::jsonb::text", text))  # as coursedb's codec reads it
    got = await shop_conn.fetchval("SELECT $1::text::jsonb", text)
    assert same(got, want), (
        f"the jsonb {text} was read back as {got!r}, expected {want!r} (what json.loads makes of it, the same types)"
    )
    if value is None:  # None is sent as SQL NULL, never through the codec
        return
    try:
        sent = await shop_conn.fetchval("SELECT $1::jsonb::text", value)
    except (asyncpg.PostgresError, asyncpg.DataError, TypeError, ValueError) as exc:
        pytest.fail(f"{value!r} sent as jsonb was refused ({exc}): send it as json.dumps writes it", pytrace=False)
    stored = await shop_conn.fetchval("SELECT $1::text::jsonb::text", text)
    assert sent == stored, f"{value!r} sent as jsonb was stored as {sent}, expected {stored}, as json.dumps writes it"
    again = await shop_conn.fetchval("SELECT $1::jsonb", got)  # what was read can be sent back as it is
    assert same(again, want), f"{got!r}, as read from jsonb, sent back came back as {again!r}"


NOT_JSON = [Decimal("10.50"), {"tags": {"a"}}, datetime.date(2026, 1, 1), uuid.UUID(int=7), b"bytes"]


async def test_a_value_json_cannot_hold_is_refused(shop_conn):
    """A Python value JSON has no type for (a Decimal, a set, a date, a UUID, bytes) is refused when sent as jsonb, as
    json.dumps refuses it, never stored as something else that reads back different."""
    for value in NOT_JSON:
        try:
            stored = await shop_conn.fetchval("SELECT $1::jsonb::text", value)
        except (asyncpg.PostgresError, asyncpg.DataError, TypeError, ValueError):
            continue
        pytest.fail(
            f"{value!r} was sent as jsonb and stored as {stored}, which reads back as something else: refuse what JSON "
            "cannot hold, as json.dumps does (no default=)",
            pytrace=False,
        )


async def test_a_str_that_is_no_label_is_refused(shop_conn):
    """A str that is not one of order_status's labels exactly ('PENDING', 'refunded') is refused, as the server
    refuses it without a codec: labels are case-sensitive."""
    for label in ["PENDING", "Paid", "refunded", ""]:
        try:
            stored = await shop_conn.fetchval("SELECT $1::order_status", label)
        except (asyncpg.PostgresError, asyncpg.DataError, TypeError, ValueError):
            continue
        pytest.fail(f"{label!r}, no label of order_status, was sent and stored as {stored!r}: refuse it", pytrace=False)


async def test_init_gives_every_pooled_connection_both_codecs(db_url):
    """Every connection of a pool with init=init_shop_connection has both codecs, held all at once."""
    await test_init_gives_one_connection_both_codecs(db_url)  # the readable failure first
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=3, init=init_shop_connection)
    try:
        decoded = list((await jsonb_on_every_connection(pool)).values())
        assert decoded == [{"ok": True}] * 3, f"jsonb as decoded by each pooled connection: {decoded}"
        async with pool.acquire() as conn:
            await check_codecs(conn)
        await shop_uses(pool)
    finally:
        await pool.close()


async def shop_uses(pool) -> None:
    """The shop's own calls on a pooled connection: a str status by default, an OrderStatus given, read back."""
    async with pool.acquire() as conn:
        rolled_back = conn.transaction()  # nothing the check writes is committed
        await rolled_back.start()
        try:
            user_id = await shop.create_user(conn, "codec@example.com", "Codec")
            try:
                pending = await shop.place_order(conn, user_id, "5.00")
                paid = await shop.place_order(conn, user_id, "7.50", OrderStatus.PAID)
            except (asyncpg.PostgresError, asyncpg.DataError) as exc:
                hint = f"shop.place_order failed on a pooled connection ({exc}): its default 'pending' is a str"
                pytest.fail(hint, pytrace=False)
            statuses = [await conn.fetchval("SELECT status FROM orders WHERE id = $1", i) for i in (pending, paid)]
            assert statuses == [OrderStatus.PENDING, OrderStatus.PAID], f"the shop's orders read back as {statuses}"
        finally:
            await rolled_back.rollback()


# %% [markdown] tags=["hint"] exercise="5.1"
# <details><summary>Hint 1</summary>
#
# An `init=` hook is an `async def` that receives the new connection. It can call other `async def`s that set
# codecs on it: the course has one for json, and you wrote one for the enum above.
# </details>
#
# <details><summary>Hint 2</summary>
#
# `await coursedb.init_connection(conn)`, then `await register_order_status(conn)`.
# </details>

# %% [markdown]
# ## Exercise 5.2: JSON that arrives as text (a step further)
#
# An HTTP handler receives an event's payload as JSON **text**, such as `'{"plan": "pro"}'`. Write
# `record_json_event(conn, kind, payload_json)`: store the event in `events` so that its payload is the JSON object
# (or array) the text spells, not a string, with every number exactly as written (`12345678901234567890.5` too),
# and return the new event's id. `conn` has the course's json codecs, like `db_conn`, and keeps them: it goes back
# to a pool for the next request. Text that is not JSON must raise an error instead of being stored.


# %% tags=["exercise"] exercise="5.2"
# Exercise 5.2: JSON that arrives as text
async def record_json_event(conn, kind: str, payload_json: str):
    raise NotImplementedError("Exercise 5.2: who should turn this text into jsonb: json.loads, or the server?")


# %% tags=["solution"] exercise="5.2"
async def record_json_event(conn, kind: str, payload_json: str):
    # $2 is text, so no json codec touches it: the server parses it (an error if it is no JSON) and keeps every
    # number exactly. json.loads would round fractions to floats, and a jsonb parameter would encode the text again.
    return await conn.fetchval(
        "INSERT INTO events (kind, payload) VALUES ($1, $2::text::jsonb) RETURNING id", kind, payload_json
    )


# %% tags=["checker", "raises-exception"] exercise="5.2"
# %%ipytest --exercise 5.2
import json
import uuid

import asyncpg
import pytest
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from coursedb.checks import examples, savepoint

# Compared on the server: jsonb compares numbers as numeric, exactly, where the codec would read floats.
STORED = """
    SELECT jsonb_typeof(payload) AS type, payload::text AS stored, payload = $2::text::jsonb AS exact,
           $2::text::jsonb::text AS spelled, kind
    FROM events WHERE id = $1
"""


# Events already there, one of the same kind: dated decades back and decades ahead (created_at is no event's id).
OTHER_EVENTS = """
    INSERT INTO events (kind, payload, created_at)
    VALUES ('signup', '{"other event": 1}', now() + interval '30 years'),
           ('old', '["other event"]', now() - interval '40 years')
"""


async def check_stored(conn, text: str, kind: str = "signup") -> None:
    await conn.execute(OTHER_EVENTS)
    event_id = await record_json_event(conn, kind, text)
    assert isinstance(event_id, uuid.UUID), f"record_json_event returned {event_id!r}: return the new event's id"
    row = await conn.fetchrow(STORED, event_id, text)
    assert row is not None, f"record_json_event returned {event_id!r}, which is no event's id"
    assert row["stored"] not in ('{"other event": 1}', '["other event"]'), (
        f"record_json_event returned {event_id!r}, the id of another event already there: return the id of the "
        "event this call stored (INSERT … RETURNING id)"
    )
    json_type = "array" if text.lstrip().startswith("[") else "object"
    assert row["type"] == json_type, (
        f"the payload was stored as a JSON {row['type']}, not as an {json_type}: the text was double-encoded"
    )
    if not row["exact"]:
        stored, spelled = shortened(row["stored"]), shortened(row["spelled"])
        as_floats = json.loads(row["stored"], parse_int=float) == json.loads(text, parse_int=float)
        why = ": its numbers went through Python floats (json.loads), which keep about 16 digits" if as_floats else ""
        hint = f"the payload came back as {stored}, expected {spelled}, exactly as the text spells it"
        pytest.fail(hint + why, pytrace=False)
    assert row["kind"] == kind, f"the event's kind was stored as {row['kind']!r}, expected {kind!r}, as given"
    await codecs_as_they_were(conn)


def shortened(text: str, most: int = 100) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


async def codecs_as_they_were(conn) -> None:
    """The connection still sends and reads jsonb as Python objects, for whoever uses it next."""
    try:
        back = await conn.fetchval("SELECT $1::jsonb", {"plan": "pro"})
    except (asyncpg.PostgresError, asyncpg.DataError, TypeError) as exc:
        refused = str(exc)
    else:
        assert back == {"plan": "pro"}, (
            f"after record_json_event a dict sent as jsonb came back as {back!r}: leave the connection's codecs as "
            "they were"
        )
        return
    hint = f"after record_json_event the connection refused a dict as jsonb ({refused}): the next request on it fails"
    pytest.fail(f"{hint}; leave the connection's codecs as they were", pytrace=False)


@pytest.mark.parametrize(
    "text",
    [
        '{"plan": "pro", "seats": 3}',
        "[1, 2, 3]",
        '{"ratio": 0.1, "big": 12345678901234567890}',
        '{"ü": ["😀", null]}',
        '\n  {"plan": "pro"}\r\n',  # whitespace around the value is JSON too
        "{}",
        "[]",
        json.dumps({"items": [{"sku": i, "name": "item " * 8} for i in range(300)]}),  # 16 KB: no size limit
    ],
    ids=["object", "array", "numbers", "unicode", "whitespace", "empty-object", "empty-array", "16-kb"],
)
async def test_the_payload_is_stored_as_json(db_conn, text):
    """The event is stored with its payload as the JSON object or array the text spells, and its id returned."""
    await check_stored(db_conn, text)


TEXT = st.text(st.characters(exclude_characters="\x00"), max_size=8)  # jsonb cannot hold \u0000
NUMBERS = st.integers() | st.floats(-1e6, 1e6)  # fractions, and whole numbers of any size
JSON = st.recursive(
    st.none() | st.booleans() | NUMBERS | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
CONTAINERS = st.lists(JSON, max_size=3) | st.dictionaries(TEXT, JSON, max_size=3)


# No shrinking (against a broken connection it takes longer than the checks themselves): the fixed texts above
# are the short examples.
@settings(examples(10), phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(
    payload=CONTAINERS,
    indent=st.sampled_from([None, 2]),
    around=st.sampled_from(["", " ", "\n", "\t\r\n "]),
    kind=st.sampled_from(["signup", " Signup\n", "ÉVÉNEMENT"]) | TEXT,
)
@example(payload={"plan": "pro"}, indent=None, around="", kind=" Signup\n")
async def test_any_json_object_or_array(db_conn, payload, indent, around, kind):
    """Any JSON object or array, however written (nested, Unicode, fractions, big numbers, whitespace around it), is
    stored as it reads, under the kind exactly as given."""
    async with savepoint(db_conn):
        text = around + json.dumps(payload, indent=indent, ensure_ascii=indent is None) + around
        await check_stored(db_conn, text, kind)


NOT_JSON = ["{plan: pro}", "", "[1, 2,]", "{'a': 1}", '{"a": 1} extra', '{"a": "line\nbreak"}', "[NaN]"]


@pytest.mark.parametrize("text", NOT_JSON, ids=[repr(text) for text in NOT_JSON])
async def test_text_that_is_not_json_is_rejected(db_conn, text):
    """Text that is not JSON (also a raw line break inside a string, or NaN) raises an error, and no event is stored."""
    try:
        async with db_conn.transaction():  # a savepoint, so a server error here does not end the test
            event_id = await record_json_event(db_conn, "signup", text)
    except (ValueError, asyncpg.PostgresError):
        count = await db_conn.fetchval("SELECT count(*) FROM events")
        assert count == 0, f"{text!r} raised, but {count} event was stored anyway"
        return
    stored_as = await db_conn.fetchval("SELECT jsonb_typeof(payload) FROM events WHERE id = $1", event_id)
    pytest.fail(f"{text!r} is not JSON, but it was stored anyway, as a JSON {stored_as}", pytrace=False)


# Numbers a Python float cannot hold: more significant digits than it keeps, and past its range.
EXACT = ['{"amount": 12345678901234567890.5}', '{"ratio": 1.0000000000000001}', "[1e400, -1e-400]"]


@pytest.mark.parametrize("text", EXACT, ids=["20-digits", "17-digits", "past-float-range"])
async def test_every_number_is_stored_exactly(db_conn, text):
    """Every number is stored exactly as the text writes it, as jsonb holds it: also one with more digits than a
    Python float keeps, or past a float's range."""
    try:
        await check_stored(db_conn, text)
    except (ValueError, asyncpg.PostgresError) as exc:
        refused = " ".join(str(exc).split())  # the server's DETAIL line too, in the one sentence
    else:
        return
    hint = f"{text} is JSON, but record_json_event refused it ({refused})"
    pytest.fail(f"{hint}: jsonb holds any JSON number, a Python float (json.loads) cannot", pytrace=False)


# %% [markdown] tags=["hint"] exercise="5.2"
# <details><summary>Hint 1</summary>
#
# The pitfall above: with a json codec, a `str` argument is encoded once more and stored as a JSON string. And
# `json.loads` rounds numbers to floats ("Numbers: exact in jsonb"). The server can read JSON text itself.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Make the parameter text and let the server cast it: `VALUES ($1, $2::text::jsonb)`. The codec only handles
# parameters of type json or jsonb, so it never sees this one; the server keeps every number exactly and raises an
# error for text that is not JSON.
# </details>

# %% [markdown]
# Stuck? Open the hints under a checker one at a time. The model answers are not in this notebook: try first, then
# ask your instructor or compare with a classmate.

# %% [markdown]
# ## Key points
#
# - Rows are `asyncpg.Record`: index by name or position; `dict(row)` when you need a dict.
# - `numeric` is `Decimal`, `uuid` is `UUID`, `timestamptz` is an aware UTC `datetime`; enums and,
#   by default, `json`/`jsonb` are `str`. Pass money as `Decimal` or `str`, never `float`.
# - With a json codec, pass Python objects. A string that already is JSON gets encoded again and is
#   stored as a JSON string (`jsonb_typeof` says `string`).
# - jsonb keeps every number exactly; a Python `float` keeps about 16 significant digits. JSON you receive as
#   text goes in as text, parsed by the server (`$1::text::jsonb`), not through `json.loads`.
# - A codec belongs to one connection. Register codecs in the pool's `init=`, and test it by holding
#   every connection of the pool at once.
# - `set_type_codec(..., format="text")` turns your own types, such as an enum, into Python objects.


# %% [markdown]
# ## Where you stand
#
# Your checker runs in this notebook, as recorded (never your code); `show()` without a number, or
# `python3 course.py progress`, shows the whole course.

# %% tags=["progress"]
from coursedb.progress import show

show("05")
