"""Answers to notebook 10 (exercises 10.1 and 10.2): wrong ones its checkers must reject, right ones they accept."""

import asyncio

import asyncpg

from coursebook.answers import wrong


@wrong("10.1", hint="still listening after returning")
async def wait_for_notification_keeps_listening(conn: asyncpg.Connection, channel: str, timeout: float) -> str | None:
    """Never removes its listener: the connection goes on listening (and queueing) after the call."""
    payloads = asyncio.Queue()
    await conn.add_listener(channel, lambda connection, pid, channel, payload: payloads.put_nowait(payload))
    try:
        return await asyncio.wait_for(payloads.get(), timeout)
    except asyncio.TimeoutError:
        return None


@wrong("10.1", hint="still listening after returning")
async def wait_for_notification_removes_another_callback(
    conn: asyncpg.Connection, channel: str, timeout: float
) -> str | None:
    """Removes a new lambda, not the callback it added: nothing is removed."""
    payloads = asyncio.Queue()
    await conn.add_listener(channel, lambda connection, pid, channel, payload: payloads.put_nowait(payload))
    try:
        return await asyncio.wait_for(payloads.get(), timeout)
    except asyncio.TimeoutError:
        return None
    finally:
        await conn.remove_listener(channel, lambda connection, pid, channel, payload: None)


@wrong("10.1", hint="TimeoutError")
async def wait_for_notification_lets_the_timeout_out(
    conn: asyncpg.Connection, channel: str, timeout: float
) -> str | None:
    """Lets asyncio's TimeoutError escape instead of returning None."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await conn.add_listener(channel, on_notification)
    try:
        return await asyncio.wait_for(payloads.get(), timeout)
    finally:
        await conn.remove_listener(channel, on_notification)


@wrong("10.1", hint="still waiting after 5 s")
async def wait_for_notification_without_a_bound(conn: asyncpg.Connection, channel: str, timeout: float) -> str | None:
    """Ignores the timeout: with no notification it waits for ever."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await conn.add_listener(channel, on_notification)
    try:
        return await payloads.get()
    finally:
        await conn.remove_listener(channel, on_notification)


@wrong("10.1", hint="assert None == 'job 7'")
async def wait_for_notification_plain_listen(conn: asyncpg.Connection, channel: str, timeout: float) -> str | None:
    """Sends LISTEN itself: the server delivers, but asyncpg calls no callback, so nothing is ever returned."""
    await conn.execute(f"LISTEN {channel}")
    try:
        await asyncio.sleep(timeout)
        return None
    finally:
        await conn.execute(f"UNLISTEN {channel}")


@wrong("10.2", hint="DID NOT RAISE")
async def check_announced_only_on_commit_commit_only(
    listening: asyncpg.Connection, working: asyncpg.Connection, place, user_id: int
) -> None:
    """Checks the committed case only: a notification that escapes a rollback goes unnoticed."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await listening.add_listener("orders", on_notification)
    try:
        async with working.transaction():
            order_id = await place(working, user_id, "10.00")
        assert await asyncio.wait_for(payloads.get(), 5) == str(order_id)
    finally:
        await listening.remove_listener("orders", on_notification)


@wrong("10.2", hint="announce_the_total")
async def check_announced_only_on_commit_any_payload(
    listening: asyncpg.Connection, working: asyncpg.Connection, place, user_id: int
) -> None:
    """Checks that something arrives on commit and nothing on rollback, but not what arrives."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await listening.add_listener("orders", on_notification)
    try:
        async with working.transaction():
            await place(working, user_id, "10.00")
        await asyncio.wait_for(payloads.get(), 5)
        rolled_back = working.transaction()
        await rolled_back.start()
        await place(working, user_id, "20.00")
        await rolled_back.rollback()
        try:
            payload = await asyncio.wait_for(payloads.get(), 0.3)
        except asyncio.TimeoutError:
            payload = None
        assert payload is None, f"a rolled-back order was announced: {payload}"
    finally:
        await listening.remove_listener("orders", on_notification)


@wrong("10.2", hint="test_passes_for_the_real_function")
async def check_announced_only_on_commit_waits_before_commit(
    listening: asyncpg.Connection, working: asyncpg.Connection, place, user_id: int
) -> None:
    """Waits for the notification inside the transaction, before the COMMIT that would send it."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await listening.add_listener("orders", on_notification)
    try:
        async with working.transaction():
            order_id = await place(working, user_id, "10.00")
            assert await asyncio.wait_for(payloads.get(), 1) == str(order_id)
    finally:
        await listening.remove_listener("orders", on_notification)
