"""Answers to notebook 10 (exercises 10.1 and 10.2): wrong ones its checkers must reject, right ones they accept."""

import asyncio
import contextlib

import asyncpg
import pytest

from coursebook.answers import right, wrong
from coursebook.mutants import equivalent


@wrong("10.1", hint="after returning a payload")
async def wait_for_notification_keeps_listening(conn: asyncpg.Connection, channel: str, timeout: float) -> str | None:
    """Never removes its listener: the connection goes on listening (and queueing) after the call."""
    payloads = asyncio.Queue()
    await conn.add_listener(channel, lambda connection, pid, channel, payload: payloads.put_nowait(payload))
    try:
        return await asyncio.wait_for(payloads.get(), timeout)
    except asyncio.TimeoutError:
        return None


@wrong("10.1", hint="after returning a payload")
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


@wrong("10.1", hint="still waiting after")
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


@wrong("10.1", hint="PostgresSyntaxError")
async def wait_for_notification_plain_listen(conn: asyncpg.Connection, channel: str, timeout: float) -> str | None:
    """Sends LISTEN itself: the server delivers, but asyncpg calls no callback, so nothing is ever returned."""
    await conn.execute(f"LISTEN {channel}")
    try:
        await asyncio.sleep(timeout)
        return None
    finally:
        await conn.execute(f"UNLISTEN {channel}")


@wrong("10.2", hint="passed for announce_and_commit")
async def check_announced_only_on_commit_commit_only(
    listening: asyncpg.Connection, working: asyncpg.Connection, place, user_id: int, wait: float
) -> None:
    """Checks the committed case only: a notification that escapes a rollback goes unnoticed."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await listening.add_listener("orders", on_notification)
    try:
        async with working.transaction():
            order_id = await place(working, user_id, "10.00")
        assert await asyncio.wait_for(payloads.get(), wait) == str(order_id)
    finally:
        await listening.remove_listener("orders", on_notification)


@wrong("10.2", hint="passed for announce_the_total")
async def check_announced_only_on_commit_any_payload(
    listening: asyncpg.Connection, working: asyncpg.Connection, place, user_id: int, wait: float
) -> None:
    """Checks that something arrives on commit and nothing on rollback, but not what arrives."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await listening.add_listener("orders", on_notification)
    try:
        async with working.transaction():
            await place(working, user_id, "10.00")
        await asyncio.wait_for(payloads.get(), wait)
        rolled_back = working.transaction()
        await rolled_back.start()
        await place(working, user_id, "20.00")
        await rolled_back.rollback()
        try:
            payload = await asyncio.wait_for(payloads.get(), wait)
        except asyncio.TimeoutError:
            payload = None
        assert payload is None, f"a rolled-back order was announced: {payload}"
    finally:
        await listening.remove_listener("orders", on_notification)


@wrong("10.2", hint="failed for the real function")
async def check_announced_only_on_commit_waits_before_commit(
    listening: asyncpg.Connection, working: asyncpg.Connection, place, user_id: int, wait: float
) -> None:
    """Waits for the notification inside the transaction, before the COMMIT that would send it."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await listening.add_listener("orders", on_notification)
    try:
        async with working.transaction():
            order_id = await place(working, user_id, "10.00")
            assert await asyncio.wait_for(payloads.get(), wait) == str(order_id)
    finally:
        await listening.remove_listener("orders", on_notification)


@wrong("10.1", hint="returned None")
async def wait_for_notification_falsy_payload(conn: asyncpg.Connection, channel: str, timeout: float) -> str | None:
    """Polls until a payload is truthy: an empty payload counts as nothing."""
    received = []
    loop = asyncio.get_running_loop()

    def on_notification(connection, pid, channel, payload):
        received.append(payload)

    await conn.add_listener(channel, on_notification)
    try:
        deadline = loop.time() + timeout
        while not (received and received[0]) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        return received[0] if received and received[0] else None
    finally:
        await conn.remove_listener(channel, on_notification)


@wrong("10.1", hint="return as soon as one arrives")
async def wait_for_notification_sleeps_out_the_timeout(
    conn: asyncpg.Connection, channel: str, timeout: float
) -> str | None:
    """Listens for the whole timeout, then returns the first payload that came."""
    received = []

    def on_notification(connection, pid, channel, payload):
        received.append(payload)

    await conn.add_listener(channel, on_notification)
    try:
        await asyncio.sleep(timeout)
    finally:
        await conn.remove_listener(channel, on_notification)
    return received[0] if received else None


@wrong("10.1", hint="a leftover of the first")
async def wait_for_notification_notebook_queue(conn: asyncpg.Connection, channel: str, timeout: float) -> str | None:
    """Reuses the notebook's on_notification and next_notification: their queue outlives the call."""
    await conn.add_listener(channel, on_notification)  # noqa: F821
    try:
        return await next_notification(timeout)  # noqa: F821
    finally:
        await conn.remove_listener(channel, on_notification)  # noqa: F821


@wrong("10.1", hint="after its task was cancelled")
async def wait_for_notification_no_finally(conn: asyncpg.Connection, channel: str, timeout: float) -> str | None:
    """Removes the listener after the wait, but not in a finally: a cancelled call leaves it behind."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await conn.add_listener(channel, on_notification)
    try:
        payload = await asyncio.wait_for(payloads.get(), timeout)
    except asyncio.TimeoutError:
        payload = None
    await conn.remove_listener(channel, on_notification)
    return payload


@wrong("10.1", hint="a third call on the same connection returned None")
async def wait_for_notification_unlisten(conn: asyncpg.Connection, channel: str, timeout: float) -> str | None:
    """Stops listening with UNLISTEN *: the server forgets the channel, asyncpg still thinks it listens."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await conn.add_listener(channel, on_notification)
    try:
        return await asyncio.wait_for(payloads.get(), timeout)
    except asyncio.TimeoutError:
        return None
    finally:
        await conn.execute("UNLISTEN *")


@wrong("10.2", hint="passed for announce_the_user")
async def check_announced_only_on_commit_compares_the_user(
    listening: asyncpg.Connection, working: asyncpg.Connection, place, user_id: int, wait: float
) -> None:
    """Compares the payload with the user's id: right only while the first user and the first order share id 1."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await listening.add_listener("orders", on_notification)
    try:
        async with working.transaction():
            order_id = await place(working, user_id, "10.00")
        assert await asyncio.wait_for(payloads.get(), wait) in (str(order_id), str(user_id))
        rolled_back = working.transaction()
        await rolled_back.start()
        await place(working, user_id, "20.00")
        await rolled_back.rollback()
        try:
            payload = await asyncio.wait_for(payloads.get(), wait)
        except asyncio.TimeoutError:
            payload = None
        assert payload is None
    finally:
        await listening.remove_listener("orders", on_notification)


@wrong("10.2", hint="your test left `listening` listening")
async def check_announced_only_on_commit_keeps_listening(
    listening: asyncpg.Connection, working: asyncpg.Connection, place, user_id: int, wait: float
) -> None:
    """Right checks, but never stops listening."""
    payloads = asyncio.Queue()
    await listening.add_listener("orders", lambda connection, pid, channel, payload: payloads.put_nowait(payload))
    async with working.transaction():
        order_id = await place(working, user_id, "10.00")
    assert await asyncio.wait_for(payloads.get(), wait) == str(order_id)
    rolled_back = working.transaction()
    await rolled_back.start()
    await place(working, user_id, "20.00")
    await rolled_back.rollback()
    assert payloads.empty() or await asyncio.wait_for(payloads.get(), wait) is None


@wrong("10.2", hint="left `working` inside a transaction")
async def check_announced_only_on_commit_never_rolls_back(
    listening: asyncpg.Connection, working: asyncpg.Connection, place, user_id: int, wait: float
) -> None:
    """Treats 'not committed yet' as 'rolled back': the second transaction is left open."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await listening.add_listener("orders", on_notification)
    try:
        async with working.transaction():
            order_id = await place(working, user_id, "10.00")
        assert await asyncio.wait_for(payloads.get(), wait) == str(order_id)
        await working.transaction().start()
        await place(working, user_id, "20.00")
        try:
            payload = await asyncio.wait_for(payloads.get(), wait)
        except asyncio.TimeoutError:
            payload = None
        assert payload is None
    finally:
        await listening.remove_listener("orders", on_notification)


@wrong("10.2", hint="wait at most `wait` for each notification")
async def check_announced_only_on_commit_fixed_bound(
    listening: asyncpg.Connection, working: asyncpg.Connection, place, user_id: int, wait: float
) -> None:
    """Ignores `wait` and waits 3 s for the notification that must not come."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await listening.add_listener("orders", on_notification)
    try:
        async with working.transaction():
            order_id = await place(working, user_id, "10.00")
        assert await asyncio.wait_for(payloads.get(), 3) == str(order_id)
        rolled_back = working.transaction()
        await rolled_back.start()
        await place(working, user_id, "20.00")
        await rolled_back.rollback()
        try:
            payload = await asyncio.wait_for(payloads.get(), 3)
        except asyncio.TimeoutError:
            payload = None
        assert payload is None
    finally:
        await listening.remove_listener("orders", on_notification)


# --- right answers, written differently from the model --------------------------------------------


@right("10.1")
async def wait_for_notification_future(conn: asyncpg.Connection, channel: str, timeout: float) -> str | None:
    """A future that the first notification completes, awaited with wait_for."""
    first = asyncio.get_running_loop().create_future()

    def on_notification(connection, pid, channel, payload):
        if not first.done():
            first.set_result(payload)

    await conn.add_listener(channel, on_notification)
    try:
        return await asyncio.wait_for(first, timeout)
    except asyncio.TimeoutError:
        return None
    finally:
        await conn.remove_listener(channel, on_notification)


@right("10.1")
async def wait_for_notification_timeout_block(conn: asyncpg.Connection, channel: str, timeout: float) -> str | None:
    """An Event and a list, with asyncio.timeout() (Python 3.11) as the bound."""
    payloads, arrived = [], asyncio.Event()

    def on_notification(connection, pid, channel, payload):
        payloads.append(payload)
        arrived.set()

    await conn.add_listener(channel, on_notification)
    try:
        async with asyncio.timeout(timeout):
            await arrived.wait()
        return payloads[0]
    except TimeoutError:
        return None
    finally:
        await conn.remove_listener(channel, on_notification)


@right("10.1")
async def wait_for_notification_exit_stack(conn: asyncpg.Connection, channel: str, timeout: float) -> str | None:
    """The clean-up registered on an AsyncExitStack the moment the listener is added."""
    queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1)

    def on_notification(connection, pid, channel, payload):
        if not queue.full():
            queue.put_nowait(payload)

    async with contextlib.AsyncExitStack() as stack:
        await conn.add_listener(channel, on_notification)
        stack.push_async_callback(conn.remove_listener, channel, on_notification)
        getter = asyncio.ensure_future(queue.get())
        stack.callback(getter.cancel)  # also when this call is cancelled while it waits
        done, _ = await asyncio.wait({getter}, timeout=timeout)
        return getter.result() if done else None


@right("10.2")
async def check_announced_only_on_commit_with_pytest(
    listening: asyncpg.Connection, working: asyncpg.Connection, place, user_id: int, wait: float
) -> None:
    """pytest.fail for a missing announcement, pytest.raises(TimeoutError) for the one that must not come."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await listening.add_listener("orders", on_notification)
    try:
        async with working.transaction():
            order_id = await place(working, user_id, "1.00")
        try:
            payload = await asyncio.wait_for(payloads.get(), wait)
        except asyncio.TimeoutError:
            pytest.fail("a committed order was not announced")
        if payload != str(order_id):
            pytest.fail(f"order {order_id} was announced as {payload!r}")
        transaction = working.transaction()
        await transaction.start()
        try:
            await place(working, user_id, "2.00")
        finally:
            await transaction.rollback()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(payloads.get(), wait)
    finally:
        await listening.remove_listener("orders", on_notification)


@right("10.2")
async def check_announced_only_on_commit_rollback_first(
    listening: asyncpg.Connection, working: asyncpg.Connection, place, user_id: int, wait: float
) -> None:
    """The rolled-back order first, then the committed one; everything that arrived is compared at the end."""
    arrived = []

    def on_notification(connection, pid, channel, payload):
        arrived.append(payload)

    await listening.add_listener("orders", on_notification)
    try:
        with contextlib.suppress(ZeroDivisionError):
            async with working.transaction():
                await place(working, user_id, "3.00")
                raise ZeroDivisionError  # leaves the block: the transaction rolls back
        async with working.transaction():
            order_id = await place(working, user_id, "4.00")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while not arrived and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(min(wait, 0.1))  # anything else on its way
        assert arrived == [str(order_id)], f"announced {arrived}, expected only order {order_id}"
    finally:
        await listening.remove_listener("orders", on_notification)


# --- mutants of the model answers that behave exactly like it --------------------------------------

equivalent(
    "10.1",
    "except-widened: except asyncio.TimeoutError -> except Exception",
    reason="asyncio.wait_for(queue.get(), timeout) raises TimeoutError and nothing else that is an Exception "
    "(a cancellation is a BaseException, so it still goes through)",
)
equivalent(
    "10.2",
    "except-widened: except asyncio.TimeoutError -> except Exception",
    reason="asyncio.wait_for(queue.get(), wait) raises TimeoutError and nothing else that is an Exception",
)
equivalent(
    "10.2",
    "with: async with working.transaction() dropped",
    reason="place() called outside a transaction still runs in one that commits: its own conn.transaction() is a "
    "real transaction when the caller has none, so the test still shows the committed announcement",
)


# Classes an outside engineer found with answers written blind: each entry is one of them, written anew.


@wrong("10.1", hint="a callback that wakes the waiting call, not a sleep between looks")
async def wait_for_notification_polls(conn: asyncpg.Connection, channel: str, timeout: float) -> str | None:
    """Collects payloads in a list and looks at it every 0.4 s until the deadline."""
    payloads: list[str] = []

    def on_notification(connection, pid, channel, payload):
        payloads.append(payload)

    await conn.add_listener(channel, on_notification)
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not payloads and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.4)
        return payloads[0] if payloads else None
    finally:
        await conn.remove_listener(channel, on_notification)


@wrong("10.1", hint="cancel (or await) every task it starts")
async def wait_for_notification_leaves_its_getter(conn: asyncpg.Connection, channel: str, timeout: float) -> str | None:
    """Waits for a queue.get() task with asyncio.wait and never cancels it when the timeout passes."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await conn.add_listener(channel, on_notification)
    try:
        getter = asyncio.create_task(payloads.get())
        done, _ = await asyncio.wait({getter}, timeout=timeout)
        return getter.result() if done else None
    finally:
        await conn.remove_listener(channel, on_notification)


@wrong("10.2", hint="passed for announce_a_sentence")
async def check_announced_only_on_commit_id_in_payload(
    listening: asyncpg.Connection, working: asyncpg.Connection, place, user_id: int, wait: float
) -> None:
    """Checks that the order's id appears in the payload, not that the payload is the id."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await listening.add_listener("orders", on_notification)
    try:
        async with working.transaction():
            order_id = await place(working, user_id, "10.00")
        assert str(order_id) in await asyncio.wait_for(payloads.get(), wait)
        rolled_back = working.transaction()
        await rolled_back.start()
        await place(working, user_id, "20.00")
        await rolled_back.rollback()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(payloads.get(), wait)
    finally:
        await listening.remove_listener("orders", on_notification)


@wrong("10.2", hint="wait at most `wait` for each notification")
async def check_announced_only_on_commit_at_least_a_second(
    listening: asyncpg.Connection, working: asyncpg.Connection, place, user_id: int, wait: float
) -> None:
    """Waits max(wait, 1) seconds for each notification: never less than a second, whatever the caller asked."""
    payloads = asyncio.Queue()
    bound = max(wait, 1.0)

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await listening.add_listener("orders", on_notification)
    try:
        async with working.transaction():
            order_id = await place(working, user_id, "10.00")
        assert await asyncio.wait_for(payloads.get(), bound) == str(order_id)
        rolled_back = working.transaction()
        await rolled_back.start()
        await place(working, user_id, "20.00")
        await rolled_back.rollback()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(payloads.get(), bound)
    finally:
        await listening.remove_listener("orders", on_notification)


@wrong("10.2", hint="neither a pass nor a failure")
async def check_announced_only_on_commit_skips_surprises(
    listening: asyncpg.Connection, working: asyncpg.Connection, place, user_id: int, wait: float
) -> None:
    """Right checks, but every surprise is a pytest.skip: against a broken function the run stays green."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await listening.add_listener("orders", on_notification)
    try:
        async with working.transaction():
            order_id = await place(working, user_id, "10.00")
        try:
            payload = await asyncio.wait_for(payloads.get(), wait)
        except asyncio.TimeoutError:
            pytest.skip("no announcement: the server is slow?")
        if payload != str(order_id):
            pytest.skip(f"unexpected payload {payload!r}")
        rolled_back = working.transaction()
        await rolled_back.start()
        await place(working, user_id, "20.00")
        await rolled_back.rollback()
        with contextlib.suppress(asyncio.TimeoutError):
            pytest.skip(f"a rolled-back order was announced: {await asyncio.wait_for(payloads.get(), wait)!r}")
    finally:
        await listening.remove_listener("orders", on_notification)


@wrong("10.1", hint="a callback raised InvalidStateError")
async def wait_for_notification_sets_the_future_each_time(
    conn: asyncpg.Connection, channel: str, timeout: float
) -> str | None:
    """A future the callback sets for every notification: the second one in a commit sets it again, and raises."""
    first = asyncio.get_running_loop().create_future()

    def on_notification(connection, pid, channel, payload):
        first.set_result(payload)

    await conn.add_listener(channel, on_notification)
    try:
        return await asyncio.wait_for(first, timeout)
    except asyncio.TimeoutError:
        return None
    finally:
        await conn.remove_listener(channel, on_notification)


@wrong("10.2", hint="passed for announce_total_then_id")
async def check_announced_only_on_commit_id_among_them(
    listening: asyncpg.Connection, working: asyncpg.Connection, place, user_id: int, wait: float
) -> None:
    """Collects what arrives within `wait` after the commit and looks for the id among it: one more, wrong, passes."""
    arrived: list[str] = []

    def on_notification(connection, pid, channel, payload):
        arrived.append(payload)

    await listening.add_listener("orders", on_notification)
    try:
        async with working.transaction():
            order_id = await place(working, user_id, "10.00")
        await asyncio.sleep(wait)
        assert str(order_id) in arrived, arrived
        arrived.clear()
        with contextlib.suppress(LookupError):
            async with working.transaction():
                await place(working, user_id, "20.00")
                raise LookupError("roll back")
        await asyncio.sleep(wait)
        assert arrived == [], f"a rolled-back order was announced: {arrived}"
    finally:
        await listening.remove_listener("orders", on_notification)


@wrong("10.1", hint="ended as if it had not been")
async def wait_for_notification_cancelled_means_none(
    conn: asyncpg.Connection, channel: str, timeout: float
) -> str | None:
    """Catches the cancellation and returns None ("cancelled: nothing came"), so the caller's own bound never fires."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await conn.add_listener(channel, on_notification)
    try:
        return await asyncio.wait_for(payloads.get(), timeout)
    except (asyncio.TimeoutError, asyncio.CancelledError):
        return None
    finally:
        await conn.remove_listener(channel, on_notification)


@wrong("10.1", hint="still waiting after 1 s")
async def wait_for_notification_zero_waits_forever(
    conn: asyncpg.Connection, channel: str, timeout: float
) -> str | None:
    """Passes `timeout or None`, the "no timeout given" idiom: a timeout of 0 waits for ever."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await conn.add_listener(channel, on_notification)
    try:
        return await asyncio.wait_for(payloads.get(), timeout or None)
    except asyncio.TimeoutError:
        return None
    finally:
        await conn.remove_listener(channel, on_notification)


@wrong("10.1", hint="never UNLISTEN the channel")
async def wait_for_notification_unlistens_to_be_sure(
    conn: asyncpg.Connection, channel: str, timeout: float
) -> str | None:
    """Removes its listener, then sends UNLISTEN for the channel "to be sure": the app's own listener goes deaf."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await conn.add_listener(channel, on_notification)
    try:
        return await asyncio.wait_for(payloads.get(), timeout)
    except asyncio.TimeoutError:
        return None
    finally:
        await conn.remove_listener(channel, on_notification)
        await conn.execute(f'UNLISTEN "{channel}"')


# Outside wrong answers still accepted in session 3 (holdout and round 2), and near-misses of the same classes.


@wrong("10.1", hint="return the payload exactly as it came")
async def wait_for_notification_payload_stripped(conn: asyncpg.Connection, channel: str, timeout: float) -> str | None:
    """Returns payload.strip() ("tidy"): a payload with surrounding spaces or a newline comes back changed."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await conn.add_listener(channel, on_notification)
    try:
        return (await asyncio.wait_for(payloads.get(), timeout)).strip()
    except asyncio.TimeoutError:
        return None
    finally:
        await conn.remove_listener(channel, on_notification)


@wrong("10.1", hint="return the payload exactly as it came")
async def wait_for_notification_drops_the_newline(conn: asyncpg.Connection, channel: str, timeout: float) -> str | None:
    """Drops one trailing newline ("the one a shell's echo adds"): a payload that ends in a newline loses it."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await conn.add_listener(channel, on_notification)
    try:
        return (await asyncio.wait_for(payloads.get(), timeout)).removesuffix("\n")
    except asyncio.TimeoutError:
        return None
    finally:
        await conn.remove_listener(channel, on_notification)


@wrong("10.1", hint="return the payload exactly as it came")
async def wait_for_notification_normalizes_unicode(
    conn: asyncpg.Connection, channel: str, timeout: float
) -> str | None:
    """Normalizes the payload to NFC ("so é compares equal"): an e followed by a combining accent comes back as one
    character, not the text that was sent."""
    import unicodedata

    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(unicodedata.normalize("NFC", payload))

    await conn.add_listener(channel, on_notification)
    try:
        return await asyncio.wait_for(payloads.get(), timeout)
    except asyncio.TimeoutError:
        return None
    finally:
        await conn.remove_listener(channel, on_notification)


@wrong("10.1", hint="return the payload exactly as it came")
async def wait_for_notification_first_line(conn: asyncpg.Connection, channel: str, timeout: float) -> str | None:
    """Returns the payload's first line ("one message per line"): a payload with a newline inside loses the rest."""
    lines = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        lines.put_nowait(payload.split("\n")[0])

    await conn.add_listener(channel, on_notification)
    try:
        return await asyncio.wait_for(lines.get(), timeout)
    except asyncio.TimeoutError:
        return None
    finally:
        await conn.remove_listener(channel, on_notification)


@wrong("10.2", hint="passed for announce_with_a_newline")
async def check_announced_only_on_commit_strip_compare(listening, working, place, user_id, wait):
    """Compares payload.strip() with the id ("payloads may carry a newline"): a function announcing the id with a
    newline passes, though consumers comparing the payload with the id never match it."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await listening.add_listener("orders", on_notification)
    try:
        async with working.transaction():
            order_id = await place(working, user_id, "10.00")
        payload = await asyncio.wait_for(payloads.get(), wait)
        assert payload.strip() == str(order_id), f"announced {payload!r} for order {order_id}"
        transaction = working.transaction()
        await transaction.start()
        try:
            await place(working, user_id, "11.00")
        finally:
            await transaction.rollback()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(payloads.get(), wait)
    finally:
        await listening.remove_listener("orders", on_notification)


@wrong("10.2", hint="passed for announce_zero_padded")
async def check_announced_only_on_commit_int_compare(listening, working, place, user_id, wait):
    """Compares the payload as a number, int(payload) == order_id: a function announcing '0001000001' (or the id
    with spaces) passes, though it is not the id's text."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await listening.add_listener("orders", on_notification)
    try:
        async with working.transaction():
            order_id = await place(working, user_id, "10.00")
        payload = await asyncio.wait_for(payloads.get(), wait)
        assert int(payload) == order_id, f"announced {payload!r} for order {order_id}"
        transaction = working.transaction()
        await transaction.start()
        try:
            await place(working, user_id, "11.00")
        finally:
            await transaction.rollback()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(payloads.get(), wait)
    finally:
        await listening.remove_listener("orders", on_notification)


@wrong("10.2", hint="passed for announce_with_a_newline")
async def check_announced_only_on_commit_startswith(listening, working, place, user_id, wait):
    """Checks that the payload starts with the id ("it may carry more after it"): a payload with a newline, or
    any tail, passes."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await listening.add_listener("orders", on_notification)
    try:
        async with working.transaction():
            order_id = await place(working, user_id, "10.00")
        payload = await asyncio.wait_for(payloads.get(), wait)
        assert payload.startswith(str(order_id)), f"announced {payload!r} for order {order_id}"
        transaction = working.transaction()
        await transaction.start()
        try:
            await place(working, user_id, "11.00")
        finally:
            await transaction.rollback()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(payloads.get(), wait)
    finally:
        await listening.remove_listener("orders", on_notification)


@wrong("10.2", hint="passed for announce_from_an_outbox")
async def check_announced_only_on_commit_half_wait_after_rollback(listening, working, place, user_id, wait):
    """Waits only wait/2 after the rollback ("the commit case already waited"): an announcement that escapes the
    rollback but arrives later than that (an outbox's) is missed."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await listening.add_listener("orders", on_notification)
    try:
        async with working.transaction():
            order_id = await place(working, user_id, "10.00")
        payload = await asyncio.wait_for(payloads.get(), wait)
        assert payload == str(order_id), f"announced {payload!r} for order {order_id}"
        transaction = working.transaction()
        await transaction.start()
        try:
            await place(working, user_id, "11.00")
        finally:
            await transaction.rollback()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(payloads.get(), wait / 2)
    finally:
        await listening.remove_listener("orders", on_notification)


@wrong("10.2", hint="passed for announce_from_an_outbox")
async def check_announced_only_on_commit_no_wait_after_rollback(listening, working, place, user_id, wait):
    """Checks the rollback case with queue.empty() right after the ROLLBACK: an announcement that escaped the
    rollback but arrives a moment later is missed."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await listening.add_listener("orders", on_notification)
    try:
        async with working.transaction():
            order_id = await place(working, user_id, "10.00")
        payload = await asyncio.wait_for(payloads.get(), wait)
        assert payload == str(order_id), f"announced {payload!r} for order {order_id}"
        transaction = working.transaction()
        await transaction.start()
        try:
            await place(working, user_id, "11.00")
        finally:
            await transaction.rollback()
        assert payloads.empty(), "a rolled-back order was announced"
    finally:
        await listening.remove_listener("orders", on_notification)


@wrong("10.2", hint="your test left `working` inside a transaction (against place_fails_the_second_time)")
async def check_announced_only_on_commit_transaction_left_on_failure(listening, working, place, user_id, wait):
    """Rolls the second transaction back only on the happy path (no try/finally): when `place` raises, the test fails
    but leaves `working` inside an open, aborted transaction."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await listening.add_listener("orders", on_notification)
    try:
        async with working.transaction():
            order_id = await place(working, user_id, "10.00")
        assert await asyncio.wait_for(payloads.get(), wait) == str(order_id)
        transaction = working.transaction()
        await transaction.start()
        await place(working, user_id, "14.00")
        await transaction.rollback()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(payloads.get(), wait)
    finally:
        await listening.remove_listener("orders", on_notification)


@wrong("10.2", hint="your test left `listening` listening")
async def check_announced_only_on_commit_listener_left_on_failure(listening, working, place, user_id, wait):
    """Removes its listener at the end of the happy path, not in a finally: every failure leaves `listening`
    listening (and queueing) for whoever uses the connection next."""
    payloads = asyncio.Queue()

    def on_notification(connection, pid, channel, payload):
        payloads.put_nowait(payload)

    await listening.add_listener("orders", on_notification)
    async with working.transaction():
        order_id = await place(working, user_id, "10.00")
    assert await asyncio.wait_for(payloads.get(), wait) == str(order_id)
    transaction = working.transaction()
    await transaction.start()
    try:
        await place(working, user_id, "14.00")
    finally:
        await transaction.rollback()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(payloads.get(), wait)
    await listening.remove_listener("orders", on_notification)
