# %% [markdown]
# # 09 · Testing a web API on asyncpg
#
# **You will learn**
# - how a web app owns its asyncpg pool: created in the app's *lifespan*, closed at shutdown;
# - how to test it through HTTP with `httpx.AsyncClient` and `ASGITransport`: no server process, no port;
# - how to hand the app the test's transaction, so every request sees the test's rows and all of it rolls back;
# - what changes when the app really commits, and when you want that;
# - how database errors should look to a client: a unique violation is a `409`, not a `500`;
# - two ways to break all of this: a pool made on another event loop, and a request that commits.
#
# *About 55 minutes.*

# %%
from coursedb.notebook import setup

db_url = setup()

# %% [markdown]
# ## The idea
#
# A web app on asyncpg creates **one pool when it starts** and lends a connection to each request. In
# [Starlette](https://www.starlette.io) (and FastAPI, which is built on it) that happens in the
# **lifespan**: code that runs once before the first request and once after the last.
#
# A test does not need a running server for that app. An ASGI app is an async function; httpx's
# `ASGITransport` calls it directly, so `httpx.AsyncClient` speaks HTTP to the app in the same process and
# on the same event loop as the test. The test runs the lifespan itself.
#
# The app below is the course's `shop` behind three routes. It reads its pool from `app.state.pool`,
# and `create_app` either makes that pool in the lifespan (production) or takes one it is given (tests).

# %%
import asyncio
import contextlib

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import coursedb
import shop


async def sign_up(request: Request) -> Response:
    body = await request.json()
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        user_id = await shop.create_user(conn, body["email"], body["name"])
    return JSONResponse({"id": user_id, "email": body["email"].lower()}, status_code=201)


async def get_user(request: Request) -> Response:
    user_id = request.path_params["user_id"]
    if user_id not in range(-(2**31), 2**31):  # users.id is an int4: asyncpg refuses more (notebook 01), no such user
        return JSONResponse({"error": "no such user"}, status_code=404)
    async with request.app.state.pool.acquire() as conn:
        user = await conn.fetchrow("SELECT id, email, name FROM users WHERE id = $1", user_id)
    if user is None:
        return JSONResponse({"error": "no such user"}, status_code=404)
    return JSONResponse(dict(user))


async def count_users(request: Request) -> Response:
    async with request.app.state.pool.acquire() as conn:
        return JSONResponse({"users": await conn.fetchval("SELECT count(*) FROM users")})


async def email_taken(request: Request, exc: shop.EmailTaken) -> Response:
    return JSONResponse({"error": "email taken", "email": str(exc)}, status_code=409)


ROUTES = [
    Route("/users", sign_up, methods=["POST"]),
    Route("/users/count", count_users),
    Route("/users/{user_id:int}", get_user),
]
ERROR_HANDLERS = {shop.EmailTaken: email_taken}


def create_app(dsn: str | None = None, *, pool=None, routes=(), exception_handlers=None) -> Starlette:
    """The shop API. With `pool`, the app uses it and leaves it open (a test owns it); else the lifespan
    creates a pool from `dsn` and closes it at shutdown. `routes` come first, before the shop's own."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        if pool is not None:
            app.state.pool = pool
            yield
            return
        app.state.pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=coursedb.init_connection)
        try:
            yield
        finally:
            await app.state.pool.close()

    handlers = ERROR_HANDLERS if exception_handlers is None else exception_handlers
    return Starlette(routes=[*routes, *ROUTES], exception_handlers=handlers, lifespan=lifespan)


@contextlib.asynccontextmanager
async def client_for(app: Starlette, raise_app_exceptions: bool = False):
    """Run the app's lifespan, then talk HTTP to it in-process. Like a real server, an unhandled
    exception becomes a 500 response, unless raise_app_exceptions lets it escape into the test."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
            yield client


# %% [markdown]
# ## Live: the app with its own pool
#
# The production way: the lifespan creates the pool, the requests commit, shutdown closes the pool.
# Three requests, then we look at what the server kept:

# %%
conn = await asyncpg.connect(db_url)
await coursedb.empty_tables(conn)  # a clean start, also when this cell runs again
await conn.close()

async with client_for(create_app(db_url)) as client:
    created = await client.post("/users", json={"email": "Ada@Example.com", "name": "Ada"})
    again = await client.post("/users", json={"email": "ada@example.com", "name": "Ada again"})
    fetched = await client.get(f"/users/{created.json()['id']}")

for response in (created, again, fetched):
    print(response.request.method, response.request.url.path.replace(str(created.json()["id"]), "ID"),
          "->", response.status_code, {k: v for k, v in response.json().items() if k != "id"})  # fmt: skip

# %% [markdown]
# A duplicate email is the client's mistake, so the API says `409 Conflict` with a body that says why.
# That takes one exception handler: `shop.create_user` turns asyncpg's `UniqueViolationError` into
# `shop.EmailTaken`, and `email_taken` turns that into the response.
#
# Everything was **committed**: the user is still there after the app shut down. Tests written like
# this leave rows behind, so we remove them:

# %%
conn = await asyncpg.connect(db_url)
print("users left behind:", await conn.fetchval("SELECT count(*) FROM users"))
await coursedb.empty_tables(conn)
await conn.close()

# %% [markdown]
# ## Tests: the app inside the test's transaction
#
# The app only ever calls `pool.acquire()`. Hand it an object whose `acquire()` lends the test's
# own `db_conn` (notebook 03's Exercise 3.1), and every request runs inside the test's transaction:
# it sees the rows the test made, the test sees the rows it made, and the rollback removes all of it.
# The handler's `conn.transaction()` becomes a savepoint, so even a failing request leaves the test's
# transaction usable.


# %%
class SharedConnection:
    """Pool-shaped: acquire() lends the same connection every time and never closes it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    @contextlib.asynccontextmanager
    async def acquire(self):
        yield self.conn


@pytest.fixture
async def api(db_conn):
    async with client_for(create_app(pool=SharedConnection(db_conn))) as client:
        yield client


# %%
# %%ipytest


async def test_sign_up_then_read_back(api, db_conn):
    response = await api.post("/users", json={"email": "Ada@Example.com", "name": "Ada"})
    assert response.status_code == 201
    user_id = response.json()["id"]
    assert await db_conn.fetchval("SELECT email FROM users WHERE id = $1", user_id) == "ada@example.com"
    response = await api.get(f"/users/{user_id}")
    assert response.json() == {"id": user_id, "email": "ada@example.com", "name": "Ada"}


async def test_an_id_no_row_can_have_is_404_not_500(api):
    for user_id in (0, 2**31 - 1, 2**31, 10**30):  # past int4, asyncpg refuses the value before any query
        assert (await api.get(f"/users/{user_id}")).status_code == 404, user_id


async def test_the_app_sees_rows_the_test_made(api, db_conn):
    await shop.create_user(db_conn, "grace@example.com", "Grace")
    assert (await api.get("/users/count")).json() == {"users": 1}


async def test_a_duplicate_email_is_409_and_the_transaction_goes_on(api, db_conn):
    await shop.create_user(db_conn, "ada@example.com", "Ada")
    response = await api.post("/users", json={"email": "ADA@example.com", "name": "Ada again"})
    assert response.status_code == 409
    assert response.json() == {"error": "email taken", "email": "ADA@example.com"}
    assert (await api.get("/users/count")).json() == {"users": 1}  # the savepoint kept the test usable


async def test_nothing_was_left_behind(api):
    assert (await api.get("/users/count")).json() == {"users": 0}


# %% [markdown]
# ### Pitfall: a unique violation that becomes a 500
#
# Without the exception handler, the duplicate sign-up is an unhandled exception: the client gets
# `500 Internal Server Error`, monitoring pages someone, and the client cannot tell "your mistake"
# from "our outage". The same test against the app without `ERROR_HANDLERS`:

# %% tags=["raises-exception"]
# %%ipytest --fails-on-purpose


async def test_a_duplicate_email_without_a_handler(db_conn):
    await shop.create_user(db_conn, "ada@example.com", "Ada")
    async with client_for(create_app(pool=SharedConnection(db_conn), exception_handlers={})) as api:
        response = await api.post("/users", json={"email": "ada@example.com", "name": "Ada again"})
    assert response.status_code == 409


# %% [markdown]
# `assert 500 == 409`. Test the error paths through HTTP, with the status code *and* the body: that is
# the contract a client relies on.
#
# ### Pitfall: a request that commits inside the test's transaction
#
# Older code sometimes manages its transaction with raw SQL. On its own connection that works. Inside the
# test's transaction, `BEGIN` is only a warning (notebook 04) and `COMMIT` ends the **test's** transaction:
# the rows become permanent. `db_conn` notices and fails the test:

# %% tags=["raises-exception"]
# %%ipytest --fails-on-purpose


async def sign_up_with_raw_sql(request: Request) -> Response:
    body = await request.json()
    async with request.app.state.pool.acquire() as conn:
        await conn.execute("BEGIN")
        user_id = await shop.create_user(conn, body["email"], body["name"])
        await conn.execute("COMMIT")
    return JSONResponse({"id": user_id}, status_code=201)


async def test_sign_up_with_raw_sql(db_conn):
    legacy = Route("/users", sign_up_with_raw_sql, methods=["POST"])
    async with client_for(create_app(pool=SharedConnection(db_conn), routes=[legacy])) as api:
        response = await api.post("/users", json={"email": "leak@example.com", "name": "Leak"})
    assert response.status_code == 201


# %% [markdown]
# The test itself passed; the **teardown** failed, with the message `db_conn` gives when a test ended its
# transaction. Use `async with conn.transaction():` in application code: a real transaction on a
# connection of its own, a savepoint inside a test's.
#
# ## When the app must really commit: `db_committed`
#
# Some behaviour exists only after a real `COMMIT`: another connection seeing the row, two requests racing
# (notebook 08), a notification being delivered (notebook 10). Then give the app the real pool through
# `db_committed`; it empties the tables after the test. Slower (a `TRUNCATE` per test), so use it for
# what needs it.

# %%
# %%ipytest


async def test_a_committed_sign_up_is_visible_to_another_connection(db_committed):
    async with client_for(create_app(pool=db_committed)) as api:
        response = await api.post("/users", json={"email": "ada@example.com", "name": "Ada"})
    assert response.status_code == 201
    async with db_committed.acquire() as other:
        assert await other.fetchval("SELECT name FROM users WHERE email = 'ada@example.com'") == "Ada"


# %% [markdown]
# ### Pitfall: the app's pool made on a different event loop
#
# An asyncpg connection belongs to the event loop it was opened on. The classic way to break that: make the
# pool once, at import time, with its own `asyncio.run()` (or in a session fixture whose loop is not the
# tests' loop), then serve requests on the loop the framework or the test runs. Here is that app as a small
# program of its own (so its broken connection cannot hurt this kernel), and a test that runs it:

# %%
IMPORT_TIME_POOL = """
import asyncio, sys
import asyncpg


async def make_pool():
    return await asyncpg.create_pool(sys.argv[1], min_size=1, max_size=1)


pool = asyncio.run(make_pool())  # made once, "at import time", on one event loop


async def handle_request():
    return await pool.fetchval("SELECT count(*) FROM users")


try:
    print(asyncio.run(handle_request()))  # a request, on the next loop
except Exception as exc:
    while exc.__context__ is not None:  # the first error: giving the connection back fails too
        exc = exc.__context__
    sys.exit(f"{type(exc).__name__}: ... {str(exc).rpartition('> ')[2]}")
"""

# %% tags=["raises-exception"]
# %%ipytest --fails-on-purpose
import subprocess
import sys


def test_an_app_whose_pool_was_made_at_import_time():
    app = subprocess.run([sys.executable, "-c", IMPORT_TIME_POOL, db_url], capture_output=True, text=True, timeout=60)
    assert app.stderr == ""  # what the app reports instead of the count of users


# %% [markdown]
# Make the pool where the requests run: let the test run the lifespan (as `client_for` does) on the
# test's loop, or hand the app a pool or connection from a fixture on that same loop.
#
# ## Exercise 9.1: an endpoint to cancel an order
#
# Write the handler `cancel_order_endpoint(request)` for `POST /orders/{order_id}/cancel`:
#
# | the order | status code | body |
# |---|---|---|
# | pending or paid: now cancelled | 200 | `{"id": <id>, "status": "cancelled"}` |
# | shipped or already cancelled | 409 | `{"error": "order is shipped"}` (its status) |
# | no such order | 404 | `{"error": "no such order"}` |
#
# The order id is `request.path_params["order_id"]`: any digits the client sends, also more than an `INTEGER`
# column holds (no such order; `get_user` above shows how). Use the pool as the other handlers do, and no raw
# `BEGIN`/`COMMIT`. Two clients may cancel the same order at the same moment: one gets the `200`, the other
# the `409`. The checker sends such requests to the app with a real pool, statement by statement and all at
# once, and while your request's transaction is open it checks that the buyer can still shop: lock only the
# order you cancel.


# %% tags=["exercise"] exercise="9.1"
# Exercise 9.1: an endpoint to cancel an order
async def cancel_order_endpoint(request: Request) -> Response:
    raise NotImplementedError("Exercise 9.1: answer each request with the status code and body the table above says")


# %% tags=["solution"] exercise="9.1"
async def cancel_order_endpoint(request: Request) -> Response:
    order_id = request.path_params["order_id"]
    if order_id not in range(-(2**31), 2**31):  # orders.id is an int4: no order has it
        return JSONResponse({"error": "no such order"}, status_code=404)
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        cancelled = await conn.fetchval(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
            order_id,
        )
        if cancelled is not None:
            return JSONResponse({"id": order_id, "status": "cancelled"})
        status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
    if status is None:
        return JSONResponse({"error": "no such order"}, status_code=404)
    return JSONResponse({"error": f"order is {status}"}, status_code=409)


# %% tags=["checker", "raises-exception"] exercise="9.1"
# %%ipytest --exercise 9.1
import contextvars

from coursedb.checks import blocked, cancel_while_waiting
from coursedb.lockstep import STATEMENTS, Lockstep, in_transaction

FAR = 2_147_483_000  # ids far from 1, next to the largest an INTEGER column holds
HOLD = 0.1  # seconds another transaction keeps the order while the request waits for it


class Lend:
    """What the checker's pools' acquire() returns, as asyncpg's does: use it with `async with`, or await it and give
    the connection back with `await pool.release(conn)`. The pool counts the connections not given back."""

    def __init__(self, pool, conn) -> None:
        self.pool, self.conn = pool, conn

    async def __aenter__(self):
        self.pool.out += 1
        return self.conn

    async def __aexit__(self, *exc) -> None:
        self.pool.out -= 1

    def __await__(self):
        return self.__aenter__().__await__()


class Lender:
    """Pool-shaped: acquire(), release(conn), and pool.fetchval(...) and friends, as on a real pool."""

    out = 0  # connections lent and not given back

    def lent_now(self):
        raise NotImplementedError

    def acquire(self) -> Lend:
        return Lend(self, self.lent_now())

    async def release(self, conn) -> None:
        self.out -= 1

    def __getattr__(self, name: str):
        return getattr(self.lent_now(), name)

    def all_back(self, what: str) -> None:
        if self.out:
            pytest.fail(
                f"{what} kept the connection it acquired from the pool: give it back (`async with pool.acquire() as "
                "conn:`, or `await pool.release(conn)` in a `finally`)",
                pytrace=False,
            )


class LentConnection(Lender):
    """Lends the test's own connection to every request."""

    def __init__(self, conn) -> None:
        self.conn = conn

    def lent_now(self):
        return self.conn


def app_with(pool) -> Starlette:
    route = Route("/orders/{order_id:int}/cancel", cancel_order_endpoint, methods=["POST"])
    return create_app(pool=pool, routes=[route])


@pytest.fixture
async def orders_api(db_conn):
    pool = LentConnection(db_conn)
    async with client_for(app_with(pool), raise_app_exceptions=True) as client:

        async def all_back(response: httpx.Response) -> None:
            pool.all_back("a request")

        client.event_hooks["response"].append(all_back)
        yield client  # raise_app_exceptions: your handler's exception, not a bare 500


def answer(response: httpx.Response) -> tuple:
    """Status code and body, the body parsed only if it is JSON."""
    is_json = response.headers.get("content-type") == "application/json"
    return response.status_code, response.json() if is_json else response.text


@pytest.fixture
async def place(db_conn):
    user_id = await shop.create_user(db_conn, "ada@example.com", "Ada")

    async def order_with(status: str, order_id: int = FAR) -> int:
        await db_conn.execute(
            "INSERT INTO orders (id, user_id, total, status) VALUES ($1, $2, 10, $3)", order_id, user_id, status
        )
        return order_id

    return order_with


@pytest.mark.parametrize("status", ["pending", "paid"])
async def test_cancel_a_cancellable_order(orders_api, place, db_conn, status):
    """A pending or paid order: 200 with {"id": <its id>, "status": "cancelled"}, and the order is cancelled."""
    order_id = await place(status)
    response = await orders_api.post(f"/orders/{order_id}/cancel")
    assert answer(response) == (200, {"id": order_id, "status": "cancelled"})
    assert await db_conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id) == "cancelled"


@pytest.mark.parametrize("status", ["shipped", "cancelled"])
async def test_an_order_that_cannot_be_cancelled_is_409(orders_api, place, db_conn, status):
    """A shipped or cancelled order: 409 with {"error": "order is <its status>"}, and the order is unchanged."""
    order_id = await place(status)
    response = await orders_api.post(f"/orders/{order_id}/cancel")
    assert answer(response) == (409, {"error": f"order is {status}"})
    assert await db_conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id) == status


async def test_an_unknown_order_is_404(orders_api, place):
    """An id no order has (its neighbours exist): 404 with {"error": "no such order"}."""
    await place("pending", FAR - 1)
    await place("shipped", FAR + 1)
    response = await orders_api.post(f"/orders/{FAR}/cancel")
    assert answer(response) == (404, {"error": "no such order"})


async def test_an_id_no_order_can_have_is_404(orders_api):
    """An id past the orders' INTEGER column (the route takes any digits): 404 with {"error": "no such order"}."""
    for order_id in (2**31, 10**30):
        try:
            response = await orders_api.post(f"/orders/{order_id}/cancel")
        except Exception as exc:
            pytest.fail(
                f"POST /orders/{order_id}/cancel raised {exc!r} (a client gets a 500): no order can have an id past "
                "the INTEGER column, so answer 404 'no such order' without asking the database",
                pytrace=False,
            )
        assert answer(response) == (404, {"error": "no such order"}), f"POST /orders/{order_id}/cancel"


async def test_cancelling_twice(orders_api, place):
    """The second cancel of one order: 409, the order is cancelled."""
    order_id = await place("pending")
    assert (await orders_api.post(f"/orders/{order_id}/cancel")).status_code == 200
    assert answer(await orders_api.post(f"/orders/{order_id}/cancel")) == (409, {"error": "order is cancelled"})


class RacingPool(Lender):
    """Lends each request the connection the lockstep driver runs it on."""

    def __init__(self) -> None:
        self.lent = contextvars.ContextVar("lent")

    def lent_now(self):
        return self.lent.get()


async def test_two_concurrent_cancels_one_200(db_committed):
    """Two clients cancel one pending order at the same moment, their requests' statements interleaved in every
    order the checker tries, then sent at once three rounds: one gets the 200, the other the 409 of the order as it
    is after the race (cancelled)."""
    pool = RacingPool()
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        race = Lockstep(A=a, B=b)
        buyer = await shop.create_user(a, "racer@example.com", "Racer")
        async with client_for(app_with(pool), raise_app_exceptions=True) as api:
            for first, head_start in race.schedules():
                order_id = await shop.place_order(a, buyer, "10.00")

                async def request(conn, order_id=order_id):
                    pool.lent.set(conn)
                    return await api.post(f"/orders/{order_id}/cancel")

                outcome = await race.run({"A": request, "B": request}, first, head_start)
                if outcome.raised():
                    raise next(iter(outcome.raised().values()))  # your handler's exception, as the learner sees it
                answers = sorted((answer(response) for response in outcome.results.values()), key=str)
                expected = [(200, {"id": order_id, "status": "cancelled"}), (409, {"error": "order is cancelled"})]
                assert answers == expected, (
                    f"two concurrent cancels of one pending order were answered {answers}, expected {expected}: one "
                    "cancels it, the other says what the order is once the first is done; their statements ran in "
                    f"this order: {outcome.timeline()}"
                )
                pool.all_back("a request of the two")
                for conn in (a, b):
                    assert not conn.is_in_transaction(), "a request left its connection inside a transaction"
            for _ in range(3):  # and at once, nothing between their statements
                order_id = await shop.place_order(a, buyer, "10.00")

                async def at_once(conn, order_id=order_id):
                    pool.lent.set(conn)
                    return await api.post(f"/orders/{order_id}/cancel")

                both = await asyncio.wait_for(asyncio.gather(at_once(a), at_once(b)), 10)
                answers = sorted((answer(response) for response in both), key=str)
                expected = [(200, {"id": order_id, "status": "cancelled"}), (409, {"error": "order is cancelled"})]
                assert answers == expected, f"two cancels of one pending order sent at once were answered {answers}"
                pool.all_back("a request of the two")


class ProbedConnection:
    """The request's connection: after each statement it sends inside a transaction, `probe` runs elsewhere."""

    def __init__(self, conn, probe) -> None:
        self.conn, self.probe = conn, probe

    def __getattr__(self, name: str):
        value = getattr(self.conn, name)
        if name not in STATEMENTS:
            return value

        async def statement(*args, **kwargs):
            result = await value(*args, **kwargs)
            if self.conn.is_in_transaction():
                await self.probe(" ".join(str(args[0] if args else name).split()))
            return result

        return statement


class ProbedPool(Lender):
    def __init__(self, conn, probe) -> None:
        self.conn = ProbedConnection(conn, probe)

    def lent_now(self):
        return self.conn


async def test_locks_only_the_order(db_committed):
    """While the request's transaction is open (after each of its statements), the buyer's other business goes
    through at once: a checkout (a new order of theirs), a payment of another order of theirs, a change to their
    name. The request locks the order it cancels, no other row."""
    async with db_committed.acquire() as conn, db_committed.acquire() as other:
        buyer = await shop.create_user(conn, "busy@example.com", "Busy")
        another = await shop.place_order(conn, buyer, "5.00")
        business = {
            "the buyer's checkout (a new order of theirs)": lambda c: shop.place_order(c, buyer, "1.00"),
            "a payment of another order of theirs": lambda c: c.execute(
                "UPDATE orders SET status = 'paid' WHERE id = $1", another
            ),
            "a change to the buyer's name": lambda c: c.execute(
                "UPDATE users SET name = name || '.' WHERE id = $1", buyer
            ),
        }
        held = []

        async def probe(after: str) -> None:
            for what in await blocked(other, business, wait=0.05):  # after each statement: a wrong answer fails fast
                held.append(f"after `{after}`, {what} had to wait for your request's transaction")

        pool = ProbedPool(conn, probe)
        async with client_for(app_with(pool), raise_app_exceptions=True) as api:
            for status in ("pending", "shipped"):
                order_id = await shop.place_order(conn, buyer, "10.00", status)
                await api.post(f"/orders/{order_id}/cancel")
                if held:
                    pytest.fail(
                        f"cancelling a {status} order, {held[0]}: lock only the order you cancel (FOR UPDATE in a "
                        "SELECT that joins other tables locks their rows too; FOR UPDATE OF orders does not)",
                        pytrace=False,
                    )
                pool.all_back("the request")


async def test_a_request_given_up_while_it_waits(db_committed):
    """A cancel request whose client goes away while it waits for the order (a payment holds it) ends cancelled, as
    the server cancels its task, and leaves its connection outside any transaction."""
    async with db_committed.acquire() as conn, db_committed.acquire() as payment:
        order_id = await shop.place_order(conn, await shop.create_user(conn, "gone@example.com", "Gone"), "10.00")
        pool = LentConnection(conn)
        async with client_for(app_with(pool), raise_app_exceptions=True) as api, payment.transaction():
            await payment.execute("UPDATE orders SET total = total + 1 WHERE id = $1", order_id)
            request = await cancel_while_waiting(api.post(f"/orders/{order_id}/cancel"), conn, payment)
            if not request.done():
                request.cancel()
                pytest.fail("the request was still running 5 s after its task was cancelled", pytrace=False)
            if not request.cancelled():
                how = f"raised {request.exception()!r}" if request.exception() else "answered"
                pytest.fail(
                    f"the request's task was cancelled while it waited for the order, and it {how}: let "
                    "asyncio.CancelledError through (never catch it, nor shield the work from it)",
                    pytrace=False,
                )
            assert not conn.is_in_transaction(), (  # asked while the payment holds the order: nothing has moved on
                "the request's task was cancelled while it waited for the order, and its connection is still inside "
                "the transaction it started: let the cancellation end the work (never shield it)"
            )
        pool.all_back("the cancelled request")


@pytest.mark.parametrize(
    ("change", "expected"),
    [("total = total + 1", (200, "cancelled")), ("status = 'shipped'", (409, "order is shipped"))],
    ids=["a payment", "a shipment"],
)
async def test_a_cancel_waits_for_whoever_holds_the_order(db_committed, change, expected):
    """While another transaction holds the order (a payment, a shipment), the request waits for it with no time limit
    of its own, then answers from what that transaction committed: 200 if the order could still be cancelled, else
    the 409 of its status then."""
    pool = RacingPool()
    async with db_committed.acquire() as a, db_committed.acquire() as b:
        order_id = await shop.place_order(a, await shop.create_user(a, "held@example.com", "Held"), "10.00")

        async def holder(conn):
            await conn.execute(f"UPDATE orders SET {change} WHERE id = $1", order_id)

        async with client_for(app_with(pool), raise_app_exceptions=True) as api:

            async def request(conn):
                pool.lent.set(conn)
                return await api.post(f"/orders/{order_id}/cancel")

            calls = {"A": in_transaction(holder), "B": request}
            outcome = await Lockstep(A=a, B=b).run(calls, first="A", hold=HOLD)  # A commits once B has waited HOLD s
        if outcome.raised():
            raise next(iter(outcome.raised().values()))  # your handler's exception, as the learner sees it
        if outcome.gave_up or outcome.limits:
            why = outcome.limits[0] if outcome.limits else outcome.gave_up[0]
            pytest.fail(
                f"the request stopped waiting for the order, or waited with a time limit of its own ({why}), while "
                f"another transaction held it: that one may take longer (a slow payment); wait without a limit "
                f"({outcome.timeline()})",
                pytrace=False,
            )
        code, said = expected
        want = (code, {"id": order_id, "status": "cancelled"} if code == 200 else {"error": said})
        got = answer(outcome.results["B"])
        assert got == want, (
            f"another transaction held the order and set {change}; then the cancel request was answered {got}, "
            f"expected {want}: decide on what that transaction committed ({outcome.timeline()})"
        )
        pool.all_back("the request")


# %% [markdown] tags=["hint"] exercise="9.1"
# <details><summary>Hint 1</summary>
#
# Exercise 7.1 already cancels an order safely and says whether it did. What is left is telling the two "no"
# answers apart: the order does not exist (404), or it exists in a status that cannot be cancelled (409).
# </details>
#
# <details><summary>Hint 2</summary>
#
# In `async with request.app.state.pool.acquire() as conn, conn.transaction():` try the one-statement `UPDATE …
# RETURNING id` first; only when it changed nothing, read the order's status: `None` means 404, anything else is
# the 409's `"order is …"`.
# </details>


# %% [markdown]
# ## Exercise 9.2: a test that catches broken APIs
#
# Now the other side: write the test. `check_duplicate_sign_up(client)` gets an `httpx.AsyncClient` for an
# app with **empty tables**. It must pass against the real app and fail against any app that answers a client
# differently: the first sign-up not `201`, a duplicate (the same email with different capitals) not `409`, or
# a `409` whose JSON body does not say `"error": "email taken"`. The checker builds such broken apps (one answers
# a duplicate with `500`, one compares emails case-sensitively, one refuses every sign-up, …). Any way a test
# fails will do (an `assert`, `pytest.fail`, `pytest.raises`, an error); a `pytest.skip` is no failure (a
# skipped test leaves the run green).


# %% tags=["exercise"] exercise="9.2"
# Exercise 9.2: a test that catches broken APIs
async def check_duplicate_sign_up(client: httpx.AsyncClient) -> None:
    raise NotImplementedError("Exercise 9.2: pass against the real API, fail against any of the broken ones")


# %% tags=["solution"] exercise="9.2"
async def check_duplicate_sign_up(client: httpx.AsyncClient) -> None:
    first = await client.post("/users", json={"email": "ada@example.com", "name": "Ada"})
    assert first.status_code == 201
    second = await client.post("/users", json={"email": "ADA@Example.com", "name": "Ada again"})
    assert second.status_code == 409
    assert second.json()["error"] == "email taken"


# %% tags=["checker", "raises-exception"] exercise="9.2"
# %%ipytest --exercise 9.2
from coursedb.checks import outcome


async def sign_up_case_sensitive(request: Request) -> Response:
    """Like sign_up, but stores the email as typed: ADA@example.com and ada@example.com both get in."""
    body = await request.json()
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        try:
            user_id = await conn.fetchval(
                "INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id", body["email"], body["name"]
            )
        except asyncpg.UniqueViolationError:
            raise shop.EmailTaken(body["email"]) from None
    return JSONResponse({"id": user_id, "email": body["email"]}, status_code=201)


async def refuse_every_sign_up(request: Request) -> Response:
    """Answers every sign-up, the first one too, with the duplicate's 409."""
    body = await request.json()
    raise shop.EmailTaken(body["email"])


async def conflict_as_text(request: Request, exc: Exception) -> Response:
    return Response("Conflict", status_code=409)


async def email_taken_as_text(request: Request, exc: Exception) -> Response:
    return Response("email taken", status_code=409)


async def conflict_without_reason(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": "conflict"}, status_code=409)


def email_taken_with(status_code: int):
    async def handler(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "email taken", "email": str(exc)}, status_code=status_code)

    return handler


async def sign_up_answered_200(request: Request) -> Response:
    """Signs up like sign_up, but answers 200 where the contract says 201 Created."""
    response = await sign_up(request)
    response.status_code = 200
    return response


async def unavailable(request: Request) -> Response:
    """Answers every sign-up 503, as a server that is down would."""
    return JSONResponse({"error": "service unavailable"}, status_code=503)


BROKEN_APIS = {
    "a duplicate answered with 500": {"exception_handlers": {}},
    "emails compared case-sensitively": {"routes": [Route("/users", sign_up_case_sensitive, methods=["POST"])]},
    "every sign-up, the first too, answered 409 'email taken'": {
        "routes": [Route("/users", refuse_every_sign_up, methods=["POST"])]
    },
    "every sign-up answered 503": {"routes": [Route("/users", unavailable, methods=["POST"])]},
    "a sign-up answered 200, not 201": {"routes": [Route("/users", sign_up_answered_200, methods=["POST"])]},
    **{
        f"a duplicate answered {code} with the body {{'error': 'email taken'}}": {
            "exception_handlers": {shop.EmailTaken: email_taken_with(code)}
        }
        for code in (200, 400, 422, 500)
    },
    "a 409 without a JSON body": {"exception_handlers": {shop.EmailTaken: conflict_as_text}},
    "a 409 whose body is the plain text 'email taken', not JSON": {
        "exception_handlers": {shop.EmailTaken: email_taken_as_text}
    },
    "a 409 whose JSON error says 'conflict', not 'email taken'": {
        "exception_handlers": {shop.EmailTaken: conflict_without_reason}
    },
}


async def outcome_against(db_conn, **broken):
    """How check_duplicate_sign_up ended against this app: passed, failed (any way a test fails), or skipped."""
    async with client_for(create_app(pool=SharedConnection(db_conn), **broken)) as client:
        return await outcome(check_duplicate_sign_up, client)


async def test_passes_against_the_real_app(db_conn):
    """Against the real API, check_duplicate_sign_up passes."""
    ended = await outcome_against(db_conn)
    if not ended.passed:
        pytest.fail(f"check_duplicate_sign_up did not pass against the real app: {ended}", pytrace=False)


@pytest.mark.parametrize("broken", BROKEN_APIS)
async def test_fails_against_a_broken_app(db_conn, broken):
    """Against each API that answers a sign-up or a duplicate differently from the real one (the first sign-up's
    status, the duplicate's status, the 409's JSON body), check_duplicate_sign_up fails, one way or another."""
    ended = await outcome_against(db_conn, **BROKEN_APIS[broken])
    if not ended.failed:
        pytest.fail(f"check_duplicate_sign_up did not fail against an app with {broken}: it {ended}", pytrace=False)


# %% [markdown] tags=["hint"] exercise="9.2"
# <details><summary>Hint 1</summary>
#
# Each broken app differs from the real one in one thing a client can see: a status code, whether two spellings
# of one email are one user, or the body of the `409`. Your test must look at each of those.
# </details>
#
# <details><summary>Hint 2</summary>
#
# Sign up `ada@example.com`, then `ADA@Example.com`; check the first answer is `201`, the second `409`, and that the
# second's JSON body has `"error": "email taken"`.
# </details>

# %% [markdown]
# ## Key points
#
# - Create the app's pool in its lifespan, and let the test run the lifespan: everything on the test's loop.
# - `httpx.AsyncClient(transport=httpx.ASGITransport(app=app))` tests the app through HTTP with no server.
#   Set `raise_app_exceptions=False` to see what a client sees (a `500`), keep the default to see the exception.
# - Hand the app the test's connection through a pool-shaped wrapper: requests see the test's rows, and the
#   rollback removes theirs. Use `db_committed` only when the behaviour needs a real commit.
# - Map database errors to status codes: a unique violation is the client's `409` with a body that says why, never a `500`.
# - Application code opens transactions with `conn.transaction()`, never raw `BEGIN`/`COMMIT`: inside a test
#   the raw `COMMIT` ends the test's transaction.
# - A test of an API should fail against a broken API: check status codes *and* bodies, and the tricky input
#   (here, an email in other capitals).


# %% [markdown]
# ## Where you stand
#
# Your checker runs in this notebook, as recorded (never your code); `show()` without a number, or
# `python3 course.py progress`, shows the whole course.

# %% tags=["progress"]
from coursedb.progress import show

show("09")
