"""Answers to notebook 09 (exercises 9.1 and 9.2): wrong ones its checkers must reject, right ones they accept."""

import asyncio

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from coursebook.answers import right, wrong


@wrong("9.1", hint="(200, {'id':")
async def cancel_order_endpoint_always_ok(request: Request) -> Response:
    """Runs the right UPDATE but answers 200 whatever it matched."""
    order_id = request.path_params["order_id"]
    async with request.app.state.pool.acquire() as conn:
        await conn.execute(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid')", order_id
        )
    return JSONResponse({"id": order_id, "status": "cancelled"})


@wrong("9.1", hint="At index 0 diff: 404 != 409")
async def cancel_order_endpoint_404_for_any_miss(request: Request) -> Response:
    """Treats "cannot be cancelled" like "does not exist"."""
    order_id = request.path_params["order_id"]
    async with request.app.state.pool.acquire() as conn:
        cancelled = await conn.fetchval(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
            order_id,
        )
    if cancelled is None:
        return JSONResponse({"error": "no such order"}, status_code=404)
    return JSONResponse({"id": order_id, "status": "cancelled"})


@wrong("9.1", hint="'NoneType' object is not subscriptable")
async def cancel_order_endpoint_reads_first(request: Request) -> Response:
    """Reads the order first and indexes the row without checking that there is one."""
    order_id = request.path_params["order_id"]
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        status = (await conn.fetchrow("SELECT status::text FROM orders WHERE id = $1 FOR UPDATE", order_id))["status"]
        if status not in ("pending", "paid"):
            return JSONResponse({"error": f"order is {status}"}, status_code=409)
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
    return JSONResponse({"id": order_id, "status": "cancelled"})


@wrong("9.1", hint="the test ended db_conn's transaction")
async def cancel_order_endpoint_raw_commit(request: Request) -> Response:
    """Manages its transaction with raw BEGIN/COMMIT: inside a test, that COMMIT ends the test's transaction."""
    order_id = request.path_params["order_id"]
    async with request.app.state.pool.acquire() as conn:
        await conn.execute("BEGIN")
        cancelled = await conn.fetchval(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
            order_id,
        )
        status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
        await conn.execute("COMMIT")
    if cancelled is not None:
        return JSONResponse({"id": order_id, "status": "cancelled"})
    if status is None:
        return JSONResponse({"error": "no such order"}, status_code=404)
    return JSONResponse({"error": f"order is {status}"}, status_code=409)


@wrong("9.2", hint="did not fail against an app with a duplicate answered with 500")
async def check_duplicate_sign_up_first_only(client: httpx.AsyncClient) -> None:
    """Checks the happy path and only sends the duplicate."""
    first = await client.post("/users", json={"email": "ada@example.com", "name": "Ada"})
    assert first.status_code == 201
    await client.post("/users", json={"email": "ADA@example.com", "name": "Ada again"})


@wrong("9.2", hint="did not fail against an app with a duplicate answered with 500")
async def check_duplicate_sign_up_any_error(client: httpx.AsyncClient) -> None:
    """Accepts any error status for the duplicate, a 500 included."""
    first = await client.post("/users", json={"email": "ada@example.com", "name": "Ada"})
    assert first.status_code == 201
    second = await client.post("/users", json={"email": "ADA@example.com", "name": "Ada again"})
    assert second.status_code >= 400


@wrong("9.2", hint="did not fail against an app with emails compared case-sensitively")
async def check_duplicate_sign_up_same_spelling(client: httpx.AsyncClient) -> None:
    """Sends the very same email twice, so case-sensitive comparison goes unnoticed."""
    first = await client.post("/users", json={"email": "ada@example.com", "name": "Ada"})
    assert first.status_code == 201
    second = await client.post("/users", json={"email": "ada@example.com", "name": "Ada again"})
    assert second.status_code == 409
    assert second.json()["error"] == "email taken"


@wrong("9.2", hint="did not fail against an app with a 409 without a JSON body")
async def check_duplicate_sign_up_status_only(client: httpx.AsyncClient) -> None:
    """Checks the status codes but never the body a client reads."""
    first = await client.post("/users", json={"email": "ada@example.com", "name": "Ada"})
    assert first.status_code == 201
    second = await client.post("/users", json={"email": "ADA@example.com", "name": "Ada again"})
    assert second.status_code == 409


@wrong("9.1", hint="were answered [(200, {'id'")
async def cancel_order_endpoint_read_then_write(request: Request) -> Response:
    """Reads the status, then updates: two requests at once both read 'pending' and both answer 200."""
    order_id = request.path_params["order_id"]
    async with request.app.state.pool.acquire() as conn:
        status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
        if status is None:
            return JSONResponse({"error": "no such order"}, status_code=404)
        if status not in ("pending", "paid"):
            return JSONResponse({"error": f"order is {status}"}, status_code=409)
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
    return JSONResponse({"id": order_id, "status": "cancelled"})


@wrong("9.1", hint="were answered [(200, {'id'")
async def cancel_order_endpoint_lock_without_transaction(request: Request) -> Response:
    """SELECT … FOR UPDATE without a transaction: the lock ends with the SELECT."""
    order_id = request.path_params["order_id"]
    async with request.app.state.pool.acquire() as conn:
        status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1 FOR UPDATE", order_id)
        if status is None:
            return JSONResponse({"error": "no such order"}, status_code=404)
        if status not in ("pending", "paid"):
            return JSONResponse({"error": f"order is {status}"}, status_code=409)
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
    return JSONResponse({"id": order_id, "status": "cancelled"})


@wrong("9.2", hint="an app with a 409 whose JSON error says 'conflict'")
async def check_duplicate_sign_up_any_error_key(client: httpx.AsyncClient) -> None:
    """Checks that the 409's JSON has an "error", not what it says."""
    first = await client.post("/users", json={"email": "ada@example.com", "name": "Ada"})
    assert first.status_code == 201
    second = await client.post("/users", json={"email": "ADA@example.com", "name": "Ada again"})
    assert second.status_code == 409
    assert "error" in second.json()


@right("9.2")
async def check_duplicate_sign_up_with_pytest_fail(client: httpx.AsyncClient) -> None:
    """Fails with pytest.fail and a sentence of its own, as the course's checkers do."""
    first = await client.post("/users", json={"email": "grace@example.com", "name": "Grace"})
    if first.status_code != 201:
        pytest.fail(f"the first sign-up was answered {first.status_code}")
    second = await client.post("/users", json={"email": "Grace@EXAMPLE.com", "name": "Grace again"})
    if second.status_code != 409:
        pytest.fail(f"the duplicate was answered {second.status_code}, not 409")
    if second.headers.get("content-type") != "application/json" or second.json().get("error") != "email taken":
        pytest.fail(f"the 409 said {second.text!r}")


@right("9.2")
async def check_duplicate_sign_up_with_pytest_raises(client: httpx.AsyncClient) -> None:
    """raise_for_status() and the 201 for the first answer, pytest.raises for the second, then the whole body."""
    first = (await client.post("/users", json={"email": "bo@example.com", "name": "Bo"})).raise_for_status()
    assert first.status_code == httpx.codes.CREATED
    second = await client.post("/users", json={"email": "BO@example.com", "name": "Bo again"})
    with pytest.raises(httpx.HTTPStatusError):
        second.raise_for_status()
    assert (second.status_code, second.json()) == (409, {"error": "email taken", "email": "BO@example.com"})


@right("9.2")
async def check_duplicate_sign_up_every_spelling(client: httpx.AsyncClient) -> None:
    """One sign-up, then a loop over other spellings of the same email, each refused the same way."""
    assert (await client.post("/users", json={"email": "zoe@example.com", "name": "Zoë"})).status_code == 201
    for spelling in ("ZOE@example.com", "Zoe@Example.COM"):
        response = await client.post("/users", json={"email": spelling, "name": "Zoë again"})
        assert response.status_code == 409, f"{spelling}: {response.status_code}"
        assert response.json()["error"] == "email taken", response.text


@right("9.1")
async def cancel_order_endpoint_lock_then_decide(request: Request) -> Response:
    """Locks the order in a transaction, then decides in Python which answer to give."""
    order_id = request.path_params["order_id"]
    if not -(2**31) <= order_id < 2**31:
        return JSONResponse({"error": "no such order"}, status_code=404)
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1 FOR UPDATE", order_id)
        if status in ("pending", "paid"):
            await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
    if status is None:
        return JSONResponse({"error": "no such order"}, status_code=404)
    if status in ("pending", "paid"):
        return JSONResponse({"id": order_id, "status": "cancelled"})
    return JSONResponse({"error": f"order is {status}"}, status_code=409)


@right("9.1")
async def cancel_order_endpoint_pool_methods(request: Request) -> Response:
    """The pool's own fetchval (no acquire): the UPDATE decides; a second query says why it changed nothing."""
    pool = request.app.state.pool
    order_id = int(request.path_params["order_id"])
    if order_id.bit_length() > 31:  # more than an int4 holds: asyncpg would refuse it
        return JSONResponse({"error": "no such order"}, status_code=404)
    if await pool.fetchval(
        "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status < 'shipped' RETURNING true", order_id
    ):
        return JSONResponse({"id": order_id, "status": "cancelled"})
    status = await pool.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
    if status is None:
        return JSONResponse({"error": "no such order"}, status_code=404)
    return JSONResponse({"error": f"order is {status}"}, status_code=409)


# Classes an outside engineer found with answers written blind: each entry is one of them, written anew.


@wrong("9.2", hint="every sign-up, the first too, answered 409")
async def check_duplicate_sign_up_duplicate_only(client: httpx.AsyncClient) -> None:
    """Checks the duplicate's answer only: an API that refuses every sign-up looks right to it."""
    await client.post("/users", json={"email": "ada@example.com", "name": "Ada"})
    second = await client.post("/users", json={"email": "ADA@example.com", "name": "Ada again"})
    assert (second.status_code, second.json()["error"]) == (409, "email taken")


@wrong("9.2", hint="a duplicate answered 200 with the body")
async def check_duplicate_sign_up_body_only(client: httpx.AsyncClient) -> None:
    """Checks what the duplicate's body says, never its status code."""
    first = await client.post("/users", json={"email": "ada@example.com", "name": "Ada"})
    assert first.status_code == 201
    second = await client.post("/users", json={"email": "ADA@example.com", "name": "Ada again"})
    assert second.json().get("error") == "email taken"


@wrong("9.2", hint="the plain text 'email taken', not JSON")
async def check_duplicate_sign_up_text_contains(client: httpx.AsyncClient) -> None:
    """Looks for the words in the body's text, so a 409 that is not JSON at all passes."""
    first = await client.post("/users", json={"email": "ada@example.com", "name": "Ada"})
    assert first.status_code == 201
    second = await client.post("/users", json={"email": "ADA@example.com", "name": "Ada again"})
    assert second.status_code == 409 and "email taken" in second.text.lower()


@wrong("9.2", hint="neither a pass nor a failure")
async def check_duplicate_sign_up_skips_surprises(client: httpx.AsyncClient) -> None:
    """Skips instead of failing when the API surprises it: against a broken API the run is green."""
    first = await client.post("/users", json={"email": "ada@example.com", "name": "Ada"})
    second = await client.post("/users", json={"email": "ADA@example.com", "name": "Ada again"})
    if (first.status_code, second.status_code) != (201, 409):
        pytest.skip(f"unexpected answers {first.status_code}, {second.status_code}: is the API up?")
    if second.headers.get("content-type") != "application/json" or second.json().get("error") != "email taken":
        pytest.skip("unexpected body")


@right("9.2")
async def check_duplicate_sign_up_whole_answers(client: httpx.AsyncClient) -> None:
    """Compares each whole answer (status, content type, JSON) to the one expected, with one assert per request."""
    first = await client.post("/users", json={"email": "Kim@example.com", "name": "Kim"})
    assert (first.status_code, first.json()) == (201, {"id": first.json().get("id"), "email": "kim@example.com"})
    second = await client.post("/users", json={"email": "kim@EXAMPLE.com", "name": "Kim"})
    kind = second.headers.get("content-type")
    assert (second.status_code, kind, second.json()["error"]) == (409, "application/json", "email taken"), second.text


@wrong("9.1", hint="the other says what the order is once the first is done")
async def cancel_order_endpoint_status_before_update(request: Request) -> Response:
    """Reads the status first, then cancels with the one-statement UPDATE; its 409 tells the status it read before,
    which a concurrent cancel has changed since."""
    order_id = request.path_params["order_id"]
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
        cancelled = await conn.fetchval(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
            order_id,
        )
    if cancelled is not None:
        return JSONResponse({"id": order_id, "status": "cancelled"})
    if status is None:
        return JSONResponse({"error": "no such order"}, status_code=404)
    return JSONResponse({"error": f"order is {status}"}, status_code=409)


@wrong("9.1", hint="kept the connection it acquired from the pool")
async def cancel_order_endpoint_never_released(request: Request) -> Response:
    """Awaits pool.acquire() and never gives the connection back."""
    order_id = request.path_params["order_id"]
    conn = await request.app.state.pool.acquire()
    async with conn.transaction():
        cancelled = await conn.fetchval(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
            order_id,
        )
        status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
    if cancelled is not None:
        return JSONResponse({"id": order_id, "status": "cancelled"})
    if status is None:
        return JSONResponse({"error": "no such order"}, status_code=404)
    return JSONResponse({"error": f"order is {status}"}, status_code=409)


@right("9.1")
async def cancel_order_endpoint_acquire_and_release(request: Request) -> Response:
    """Awaits pool.acquire() and gives the connection back with pool.release() in a finally."""
    order_id = request.path_params["order_id"]
    if order_id >= 2**31:  # the route's int takes digits only: never negative
        return JSONResponse({"error": "no such order"}, status_code=404)
    pool = request.app.state.pool
    conn = await pool.acquire()
    try:
        async with conn.transaction():
            cancelled = await conn.fetchval(
                "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
                order_id,
            )
            status = (
                "cancelled"
                if cancelled
                else await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
            )
    finally:
        await pool.release(conn)
    if cancelled:
        return JSONResponse({"id": order_id, "status": "cancelled"})
    if status is None:
        return JSONResponse({"error": "no such order"}, status_code=404)
    return JSONResponse({"error": f"order is {status}"}, status_code=409)


@wrong("9.2", hint="a duplicate answered 400 with the body")
async def check_duplicate_sign_up_any_client_error(client: httpx.AsyncClient) -> None:
    """Takes any 4xx for the duplicate ("the client's mistake"): a 400 passes, though the contract says 409."""
    first = await client.post("/users", json={"email": "ada@example.com", "name": "Ada"})
    assert first.status_code == 201
    second = await client.post("/users", json={"email": "ADA@example.com", "name": "Ada again"})
    assert second.is_client_error and second.json()["error"] == "email taken"


@wrong("9.2", hint="every sign-up answered 503")
async def check_duplicate_sign_up_only_if_the_first_worked(client: httpx.AsyncClient) -> None:
    """Checks the duplicate only when the first sign-up worked: an API that is down passes, having checked nothing."""
    first = await client.post("/users", json={"email": "ada@example.com", "name": "Ada"})
    if first.status_code == 201:
        second = await client.post("/users", json={"email": "ADA@example.com", "name": "Ada again"})
        assert (second.status_code, second.json()["error"]) == (409, "email taken")


@wrong("9.1", hint="decide on what that transaction committed")
async def cancel_order_endpoint_lost_means_cancelled(request: Request) -> Response:
    """Reads the status for 404/409, then cancels; when the UPDATE changes nothing it says "order is cancelled",
    assuming another cancel got there first (a shipment may have)."""
    order_id = request.path_params["order_id"]
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
        if status is None:
            return JSONResponse({"error": "no such order"}, status_code=404)
        if status not in ("pending", "paid"):
            return JSONResponse({"error": f"order is {status}"}, status_code=409)
        cancelled = await conn.fetchval(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
            order_id,
        )
    if cancelled is None:
        return JSONResponse({"error": "order is cancelled"}, status_code=409)
    return JSONResponse({"id": order_id, "status": "cancelled"})


@wrong("9.1", hint="with a time limit of its own")
async def cancel_order_endpoint_lock_timeout(request: Request) -> Response:
    """SET LOCAL lock_timeout = '1s' so a request never hangs: an order held longer (a payment) gives a 500."""
    order_id = request.path_params["order_id"]
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL lock_timeout = '1s'")
        cancelled = await conn.fetchval(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
            order_id,
        )
        status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
    if cancelled is not None:
        return JSONResponse({"id": order_id, "status": "cancelled"})
    if status is None:
        return JSONResponse({"error": "no such order"}, status_code=404)
    return JSONResponse({"error": f"order is {status}"}, status_code=409)


# Outside wrong answers still accepted in session 3 (holdout and round 2), and near-misses of the same classes.


@wrong("9.1", hint="had to wait for your request's transaction")
async def cancel_order_endpoint_join_users_for_update(request: Request) -> Response:
    """SELECT ... FROM orders JOIN users ... FOR UPDATE without OF locks the buyer's row too: while a cancel request's
    transaction is open, the buyer's checkout (the new order's foreign-key check on users) waits for it."""
    order_id = request.path_params["order_id"]
    if order_id not in range(-(2**31), 2**31):
        return JSONResponse({"error": "no such order"}, status_code=404)
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        status = await conn.fetchval(
            "SELECT o.status::text FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = $1 FOR UPDATE", order_id
        )
        if status is None:
            return JSONResponse({"error": "no such order"}, status_code=404)
        if status not in ("pending", "paid"):
            return JSONResponse({"error": f"order is {status}"}, status_code=409)
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
    return JSONResponse({"id": order_id, "status": "cancelled"})


@wrong("9.1", hint="no order can have an id past the INTEGER column")
async def cancel_order_endpoint_no_range_guard(request: Request) -> Response:
    """The model's shape with the path's int passed straight to asyncpg: /orders/2147483648/cancel makes asyncpg refuse
    the argument (out of int32 range) and the client gets a 500, not 404 "no such order"."""
    order_id = request.path_params["order_id"]
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        cancelled = await conn.fetchval(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
            order_id,
        )
        status = (
            "cancelled" if cancelled else await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
        )
    if cancelled is not None:
        return JSONResponse({"id": order_id, "status": "cancelled"})
    if status is None:
        return JSONResponse({"error": "no such order"}, status_code=404)
    return JSONResponse({"error": f"order is {status}"}, status_code=409)


@wrong("9.1", hint="no order can have an id past the INTEGER column")
async def cancel_order_endpoint_guard_off_by_one(request: Request) -> Response:
    """Guards the range with `>` where `>=` is meant: 2**31 itself, one past the largest int4, still reaches asyncpg."""
    order_id = request.path_params["order_id"]
    if order_id > 2**31:
        return JSONResponse({"error": "no such order"}, status_code=404)
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        cancelled = await conn.fetchval(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
            order_id,
        )
        status = (
            "cancelled" if cancelled else await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
        )
    if cancelled is not None:
        return JSONResponse({"id": order_id, "status": "cancelled"})
    if status is None:
        return JSONResponse({"error": "no such order"}, status_code=404)
    return JSONResponse({"error": f"order is {status}"}, status_code=409)


@wrong("9.1", hint="a payment of another order of theirs had to wait")
async def cancel_order_endpoint_locks_the_buyers_orders(request: Request) -> Response:
    """Locks every order of the buyer "so nothing about them changes meanwhile": the buyer's other orders cannot be
    paid while the cancel's transaction is open."""
    order_id = request.path_params["order_id"]
    if order_id not in range(-(2**31), 2**31):
        return JSONResponse({"error": "no such order"}, status_code=404)
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT id, status::text FROM orders WHERE user_id = (SELECT user_id FROM orders WHERE id = $1) FOR UPDATE",
            order_id,
        )
        status = {row["id"]: row["status"] for row in rows}.get(order_id)
        if status is None:
            return JSONResponse({"error": "no such order"}, status_code=404)
        if status not in ("pending", "paid"):
            return JSONResponse({"error": f"order is {status}"}, status_code=409)
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
    return JSONResponse({"id": order_id, "status": "cancelled"})


@wrong("9.1", hint="the buyer's checkout (a new order of theirs) had to wait")
async def cancel_order_endpoint_locks_the_table(request: Request) -> Response:
    """Serializes cancels with LOCK TABLE orders IN SHARE ROW EXCLUSIVE MODE: right answers, but while one cancel runs
    nobody can place an order."""
    order_id = request.path_params["order_id"]
    if order_id not in range(-(2**31), 2**31):
        return JSONResponse({"error": "no such order"}, status_code=404)
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        await conn.execute("LOCK TABLE orders IN SHARE ROW EXCLUSIVE MODE")
        status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
        if status in ("pending", "paid"):
            await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
    if status is None:
        return JSONResponse({"error": "no such order"}, status_code=404)
    if status not in ("pending", "paid"):
        return JSONResponse({"error": f"order is {status}"}, status_code=409)
    return JSONResponse({"id": order_id, "status": "cancelled"})


@wrong("9.2", hint="a sign-up answered 200, not 201")
async def check_duplicate_sign_up_first_is_success(client: httpx.AsyncClient) -> None:
    """Takes any 2xx for the first sign-up (raise_for_status()): an API answering 200 where the contract says 201
    passes."""
    (await client.post("/users", json={"email": "ada@example.com", "name": "Ada"})).raise_for_status()
    second = await client.post("/users", json={"email": "ADA@example.com", "name": "Ada again"})
    assert (second.status_code, second.json()["error"]) == (409, "email taken")


@wrong("9.2", hint="a duplicate answered 422 with the body")
async def check_duplicate_sign_up_409_or_422(client: httpx.AsyncClient) -> None:
    """Accepts 409 or 422 for the duplicate ("FastAPI answers bad input 422"): the contract says 409."""
    first = await client.post("/users", json={"email": "ada@example.com", "name": "Ada"})
    assert first.status_code == 201
    second = await client.post("/users", json={"email": "ADA@example.com", "name": "Ada again"})
    assert second.status_code in (409, 422) and second.json()["error"] == "email taken"


@wrong("9.1", hint="is still inside the transaction it started")
async def cancel_order_endpoint_shielded(request: Request) -> Response:
    """Shields the work from the client going away ("once asked, finish it"): cancelled while it waits for the
    order, its statement goes on waiting and cancels the order later anyway, on a connection nobody waits for."""
    order_id = request.path_params["order_id"]
    if order_id not in range(-(2**31), 2**31):
        return JSONResponse({"error": "no such order"}, status_code=404)

    async def cancel() -> str | None:
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            cancelled = await conn.fetchval(
                "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
                order_id,
            )
            return (
                "cancelled"
                if cancelled
                else await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
            )

    status = await asyncio.shield(cancel())
    if status == "cancelled":
        return JSONResponse({"id": order_id, "status": "cancelled"})
    if status is None:
        return JSONResponse({"error": "no such order"}, status_code=404)
    return JSONResponse({"error": f"order is {status}"}, status_code=409)


@wrong("9.1", hint="let asyncio.CancelledError through")
async def cancel_order_endpoint_cancel_is_503(request: Request) -> Response:
    """Turns its own cancellation into a 503 ("tell the client to retry"): the server's cancel of the task is
    swallowed, and the task answers instead of ending."""
    order_id = request.path_params["order_id"]
    if order_id not in range(-(2**31), 2**31):
        return JSONResponse({"error": "no such order"}, status_code=404)
    try:
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            cancelled = await conn.fetchval(
                "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
                order_id,
            )
            status = (
                "cancelled"
                if cancelled
                else await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
            )
    except asyncio.CancelledError:
        return JSONResponse({"error": "try again"}, status_code=503)
    if status == "cancelled":
        return JSONResponse({"id": order_id, "status": "cancelled"})
    if status is None:
        return JSONResponse({"error": "no such order"}, status_code=404)
    return JSONResponse({"error": f"order is {status}"}, status_code=409)
