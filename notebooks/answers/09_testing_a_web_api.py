"""Answers to notebook 09 (exercises 9.1 and 9.2): wrong ones its checkers must reject, right ones they accept."""

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from coursebook.answers import wrong


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


@wrong("9.2", hint="passed against an app with a duplicate answered with 500")
async def check_duplicate_sign_up_first_only(client: httpx.AsyncClient) -> None:
    """Checks the happy path and only sends the duplicate."""
    first = await client.post("/users", json={"email": "ada@example.com", "name": "Ada"})
    assert first.status_code == 201
    await client.post("/users", json={"email": "ADA@example.com", "name": "Ada again"})


@wrong("9.2", hint="passed against an app with a duplicate answered with 500")
async def check_duplicate_sign_up_any_error(client: httpx.AsyncClient) -> None:
    """Accepts any error status for the duplicate, a 500 included."""
    first = await client.post("/users", json={"email": "ada@example.com", "name": "Ada"})
    assert first.status_code == 201
    second = await client.post("/users", json={"email": "ADA@example.com", "name": "Ada again"})
    assert second.status_code >= 400


@wrong("9.2", hint="passed against an app with emails compared case-sensitively")
async def check_duplicate_sign_up_same_spelling(client: httpx.AsyncClient) -> None:
    """Sends the very same email twice, so case-sensitive comparison goes unnoticed."""
    first = await client.post("/users", json={"email": "ada@example.com", "name": "Ada"})
    assert first.status_code == 201
    second = await client.post("/users", json={"email": "ada@example.com", "name": "Ada again"})
    assert second.status_code == 409
    assert second.json()["error"] == "email taken"


@wrong("9.2", hint="passed against an app with a 409 without the JSON error")
async def check_duplicate_sign_up_status_only(client: httpx.AsyncClient) -> None:
    """Checks the status codes but never the body a client reads."""
    first = await client.post("/users", json={"email": "ada@example.com", "name": "Ada"})
    assert first.status_code == 201
    second = await client.post("/users", json={"email": "ADA@example.com", "name": "Ada again"})
    assert second.status_code == 409
