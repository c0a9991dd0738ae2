"""Answers to notebook 07 (exercises 7.1 and 7.2): wrong ones its checkers must reject, right ones they accept."""

import asyncio
import itertools
import random
import secrets
import uuid

import asyncpg
import pytest

import shop
from coursebook.answers import right, wrong


@wrong("7.1", hint="both returned True")
async def cancel_order_read_then_write(conn, order_id: int) -> bool:
    """Reads the status, then writes: two concurrent cancels both see 'pending' (the issue's example)."""
    status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
    if status in ("pending", "paid"):
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
        return True
    return False


@wrong("7.1", hint="a shipped order")
async def cancel_order_any_status(conn, order_id: int) -> bool:
    """Cancels whatever the status."""
    return await conn.fetchval("UPDATE orders SET status = 'cancelled' WHERE id = $1 RETURNING true", order_id) is True


@wrong("7.1", hint="returned 'UPDATE 1'")
async def cancel_order_command_status(conn, order_id: int) -> bool:
    """Returns execute()'s status text."""
    return await conn.execute(
        "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid')", order_id
    )


@wrong("7.1", hint="a paid order")
async def cancel_order_pending_only(conn, order_id: int) -> bool:
    """Forgets that paid orders can be cancelled too."""
    cancelled = await conn.fetchval(
        "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status = 'pending' RETURNING id", order_id
    )
    return cancelled is not None


@wrong("7.1", hint="returned True")
async def cancel_order_hard_coded(conn, order_id: int) -> bool:
    """Always True, never touches the row."""
    return True


@wrong("7.2", hint="is taken: give every user an email of its own")
@pytest.fixture
def make_user_fixed_email(db_conn):
    """Every user gets the same email."""

    async def make(email: str | None = None) -> int:
        return await shop.create_user(db_conn, email or "user@example.com", "User")

    return make


@wrong("7.2", hint="not callable")
@pytest.fixture
async def make_user_not_a_factory(db_conn):
    """Returns one user's id, not a function that makes users."""
    return await shop.create_user(db_conn, "user@example.com", "User")


@wrong("7.2", hint="visible to another connection")
@pytest.fixture
def make_user_commits(db_pool):
    """Creates users through the pool: they are committed and outlive the test."""
    made = []

    async def make(email: str | None = None) -> int:
        async with db_pool.acquire() as conn:
            user_id = await shop.create_user(conn, email or f"user{len(made)}@example.com", "User")
        made.append(user_id)
        return user_id

    return make


@wrong("7.2", hint="ScopeMismatch")
@pytest.fixture(scope="session")
def make_user_session_scoped(db_conn):
    """Made once for the whole session, on top of a per-test fixture."""
    counter = iter(range(1_000_000))

    async def make(email: str | None = None) -> int:
        return await shop.create_user(db_conn, email or f"user{next(counter)}@example.com", "User")

    return make


@wrong("7.1", hint="both returned True")
async def cancel_order_lock_without_transaction(conn, order_id: int) -> bool:
    """Locks the row with FOR UPDATE, but outside a transaction the lock ends with the SELECT."""
    status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1 FOR UPDATE", order_id)
    if status not in ("pending", "paid"):
        return False
    await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
    return True


@wrong("7.1", hint="set total = total + 1; then cancel_order returned False")
async def cancel_order_skip_locked(conn, order_id: int) -> bool:
    """Skips an order someone else holds: returns False for a pending order another transaction only touched."""
    async with conn.transaction():
        status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1 FOR UPDATE SKIP LOCKED", order_id)
        if status not in ("pending", "paid"):
            return False
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
        return True


@wrong("7.1", hint="raised LockNotAvailableError")
async def cancel_order_nowait(conn, order_id: int) -> bool:
    """FOR UPDATE NOWAIT: gives an error instead of waiting for the transaction that holds the order."""
    async with conn.transaction():
        status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1 FOR UPDATE NOWAIT", order_id)
        if status not in ("pending", "paid"):
            return False
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
        return True


@wrong("7.1", hint="both returned True")
async def cancel_order_update_then_read(conn, order_id: int) -> bool:
    """Cancels in one statement, then decides from a second read whether it was its own cancel."""
    await conn.execute(
        "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid')", order_id
    )
    return await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id) == "cancelled"


@wrong("7.2", hint="ids and emails are not a count")
@pytest.fixture
def make_user_counts_rows(db_conn):
    """Numbers the default email by the rows in users: after a delete, the next number is taken."""

    async def make(email: str | None = None) -> int:
        number = await db_conn.fetchval("SELECT count(*) FROM users")
        return await shop.create_user(db_conn, email or f"user{number}@example.com", "User")

    return make


@wrong("7.2", hint="has no user with that id")
@pytest.fixture
def make_user_returns_the_count(db_conn):
    """Returns how many users there are now, not the new user's id."""

    async def make(email: str | None = None) -> int:
        number = await db_conn.fetchval("SELECT count(*) FROM users") + 1
        await shop.create_user(db_conn, email or f"user-{number}-{id(make)}@example.com", "User")
        return await db_conn.fetchval("SELECT count(*) FROM users")

    return make


# Written by an outside engineer without seeing the catalogue, accepted by the checkers before they grew.


@wrong("7.1", hint="a time limit it set itself")
async def cancel_order_gives_up_after_lock_timeout(conn, order_id: int) -> bool:
    """A bounded wait: SET LOCAL lock_timeout = '2s', and an order still held after that counts as not cancellable."""
    async with conn.transaction():
        await conn.execute("SET LOCAL lock_timeout = '2s'")
        try:
            async with conn.transaction():
                changed = await conn.fetchval(
                    "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') "
                    "RETURNING id",
                    order_id,
                )
        except asyncpg.LockNotAvailableError:
            return False
        return changed is not None


@wrong("7.2", hint="not one that differs by chance")
@pytest.fixture
def make_user_random_number(db_conn):
    """Default emails from random.randint(1, 10000): different by luck, until a test makes a few hundred users."""

    async def make(email: str | None = None) -> int:
        return await shop.create_user(db_conn, email or f"user{random.randint(1, 10000)}@example.com", "User")

    return make


@wrong("7.2", hint="which the test had chosen")
@pytest.fixture
def make_user_counter(db_conn):
    """Default emails user1@, user2@... from a counter: a test that chose user2@example.com itself collides with it."""
    numbers = itertools.count(1)

    async def make(email: str | None = None) -> int:
        return await shop.create_user(db_conn, email or f"user{next(numbers)}@example.com", "User")

    return make


@wrong("7.1", hint="inside a transaction it started")
async def cancel_order_rolls_back_on_exceptions_only(conn, order_id: int) -> bool:
    """A transaction by hand, rolled back in `except Exception`: a cancelled call (a request's time limit, while it
    waits for the order) is no Exception, and leaves the transaction open on the connection."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        changed = await conn.fetchval(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
            order_id,
        )
    except Exception:
        await transaction.rollback()
        raise
    await transaction.commit()
    return changed is not None


# Accepted by the checkers of session 3 (outside engineers' answers, and round 2's), rejected by general properties now.


@wrong("7.1", hint="lock only the order you cancel")
async def cancel_order_join_users_for_update(conn, order_id: int) -> bool:
    """Reads the order joined with its user FOR UPDATE, without OF: the user's row is locked too, so while the cancel's
    transaction is open every checkout of that user (place_order's foreign-key check) waits for it."""
    async with conn.transaction():
        status = await conn.fetchval(
            "SELECT o.status::text FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = $1 FOR UPDATE", order_id
        )
        if status not in ("pending", "paid"):
            return False
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
        return True


@wrong("7.1", hint="cancel the query with the call")
async def cancel_order_shield_update(conn, order_id: int) -> bool:
    """asyncio.shield around the UPDATE, so that a cancelled request still cancels the order: the query keeps running
    on the connection after the caller is cancelled, and the caller's next query fails (another operation is in
    progress); once the holder commits, the order is cancelled after all."""
    changed = await asyncio.shield(
        conn.fetchval(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
            order_id,
        )
    )
    return changed is not None


@wrong("7.1", hint="a time limit it set itself")
async def cancel_order_client_timeout(conn, order_id: int) -> bool:
    """asyncpg's timeout=2 and a TimeoutError counts as not cancellable: an order another transaction holds longer than
    2 s (a slow payment) is reported as not cancellable. A timer in Python: the server sees no lock_timeout."""
    try:
        changed = await conn.fetchval(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
            order_id,
            timeout=2,
        )
    except asyncio.TimeoutError:
        return False
    return changed is not None


@wrong("7.1", hint="lock only the order you cancel")
async def cancel_order_lock_table(conn, order_id: int) -> bool:
    """LOCK TABLE orders to make the race impossible: every cancel waits for every transaction that writes any order (a
    checkout, another cancel) and blocks them all until it ends."""
    async with conn.transaction():
        await conn.execute("LOCK TABLE orders IN SHARE ROW EXCLUSIVE MODE")
        status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
        if status not in ("pending", "paid"):
            return False
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
        return True


@wrong("7.2", hint="pass the email on as it is given")
@pytest.fixture
def make_user_python_lower_email(db_conn):
    """Lower-cases every given email in Python first: Python folds every script, the course database's lower() (C
    locale) only ASCII, so make_user(email="ZOË@example.com") stores zoë@…, not the zoË@… create_user itself stores,
    and find_user_by_email("ZOË@example.com") finds nobody."""

    async def make(email: str | None = None) -> int:
        if email is None:
            email = f"user-{uuid.uuid4().hex}@example.com"
        return await shop.create_user(db_conn, email.lower(), "User")

    return make


@wrong("7.2", hint="too few random bits")
@pytest.fixture
def make_user_short_uuid(db_conn):
    """Readable emails from the first 6 hex digits of a uuid4: 24 random bits, so 500 users collide in about one run of
    130 (a flaky test), 5000 in about half."""

    async def make(email: str | None = None) -> int:
        if email is None:
            email = f"user-{uuid.uuid4().hex[:6]}@example.com"
        return await shop.create_user(db_conn, email, "User")

    return make


@wrong("7.2", hint="pass the email on as it is given")
@pytest.fixture
def make_user_email_or_default(db_conn):
    """`email or <generated>`: make_user(email="") (a test about an empty email) makes a user with a generated email
    instead of the one it was given."""

    async def make(email: str | None = None) -> int:
        return await shop.create_user(db_conn, email or f"user-{uuid.uuid4().hex}@example.com", "User")

    return make


# Near-misses of the same kinds, written for the checker.


@wrong("7.1", hint="lock only the order you cancel")
async def cancel_order_join_users_for_no_key_update(conn, order_id: int) -> bool:
    """Joins users to be sure the buyer exists, with the weaker FOR NO KEY UPDATE but still without OF: the user's row
    is locked, so changing the user (a new address) waits for every cancel of their orders."""
    async with conn.transaction():
        status = await conn.fetchval(
            "SELECT o.status::text FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = $1 FOR NO KEY UPDATE",
            order_id,
        )
        if status not in ("pending", "paid"):
            return False
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
        return True


@wrong("7.1", hint="a time limit it set itself")
async def cancel_order_wait_for(conn, order_id: int) -> bool:
    """asyncio.wait_for(…, 5) around the UPDATE, so that a request never hangs: a holder that keeps the order longer
    makes a cancellable order look not cancellable."""
    try:
        changed = await asyncio.wait_for(
            conn.fetchval(
                "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
                order_id,
            ),
            5,
        )
    except asyncio.TimeoutError:
        return False
    return changed is not None


@wrong("7.1", hint="must end cancelled")
async def cancel_order_swallows_cancellation(conn, order_id: int) -> bool:
    """Catches CancelledError and answers False: the caller that cancelled it (a request's time limit) is told the
    order cannot be cancelled, and its own cancellation is lost."""
    try:
        changed = await conn.fetchval(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
            order_id,
        )
    except asyncio.CancelledError:
        return False
    return changed is not None


@wrong("7.1", hint="expected True and")
async def cancel_order_positive_ids_only(conn, order_id: int) -> bool:
    """Refuses ids below 1 before asking the server ("ids start at 1"): an order with id 0 or a negative id, which an
    INTEGER column holds, is never cancelled."""
    if order_id < 1:
        return False
    changed = await conn.fetchval(
        "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id", order_id
    )
    return changed is not None


@wrong("7.1", hint="let errors reach the caller")
async def cancel_order_false_on_any_error(conn, order_id: int) -> bool:
    """Any database error becomes False: a failed transaction or a lost connection is reported as an order that cannot
    be cancelled."""
    try:
        changed = await conn.fetchval(
            "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
            order_id,
        )
    except asyncpg.PostgresError:
        return False
    return changed is not None


@wrong("7.2", hint="pass the email on as it is given")
@pytest.fixture
def make_user_strips_email(db_conn):
    """Strips the given email ("tidy input"): make_user(email=" ada@example.com ") stores another email than
    create_user would, and a test about whitespace in emails tests nothing."""

    async def make(email: str | None = None) -> int:
        if email is None:
            email = f"user-{uuid.uuid4().hex}@example.com"
        return await shop.create_user(db_conn, email.strip(), "User")

    return make


@wrong("7.2", hint="too few random bits")
@pytest.fixture
def make_user_short_token(db_conn):
    """Emails from secrets.token_hex(3): the OS's randomness, not the seeded generator, but only 24 bits of it."""

    async def make(email: str | None = None) -> int:
        if email is None:
            email = f"user-{secrets.token_hex(3)}@example.com"
        return await shop.create_user(db_conn, email, "User")

    return make


# --- right answers, written differently from the model --------------------------------------------


@right("7.1")
async def cancel_order_lock_then_update(conn, order_id: int) -> bool:
    """Locks the row in a transaction, decides in Python, then updates: a second cancel waits at the lock."""
    async with conn.transaction():
        status = await conn.fetchval("SELECT status::text FROM orders WHERE id = $1 FOR UPDATE", order_id)
        if status not in ("pending", "paid"):
            return False
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
        return True


@right("7.1")
async def cancel_order_command_tag(conn, order_id: int) -> bool:
    """One UPDATE; execute()'s command tag says how many rows it changed."""
    tag = await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status < 'shipped'", order_id)
    return tag == "UPDATE 1"


@right("7.1")
async def cancel_order_counted_in_sql(conn, order_id: int) -> bool:
    """The UPDATE in a WITH, and SQL counts what it returned."""
    return await conn.fetchval(
        """
        WITH changed AS (
            UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING 1
        )
        SELECT count(*) = 1 FROM changed
        """,
        order_id,
    )


@right("7.2")
@pytest.fixture
async def make_user_async_uuid(db_conn):
    """An async fixture; default emails from uuid4."""

    async def make(email: str | None = None) -> int:
        if email is None:
            email = f"{uuid.uuid4().hex}@example.com"
        return await shop.create_user(db_conn, email, "Someone")

    return make


@right("7.2")
@pytest.fixture
def make_user_class(db_conn):
    """A small class whose instances are called like functions, keeping their own count and passing over numbers
    whose email is taken already."""

    class UserFactory:
        def __init__(self) -> None:
            self.made = 0

        async def __call__(self, email: str | None = None) -> int:
            while email is None:
                self.made += 1
                candidate = f"made-{self.made}@example.test"
                if not await db_conn.fetchval("SELECT EXISTS (SELECT FROM users WHERE email = $1)", candidate):
                    email = candidate
            return await shop.create_user(db_conn, email, f"User {self.made}")

    return UserFactory()


@right("7.2")
@pytest.fixture
def make_user_with_savepoints(db_conn):
    """A yield fixture; emails from a counter, each try in a savepoint of the test's transaction: a taken email rolls
    back its savepoint, and the next number is tried."""
    numbers = itertools.count()

    async def make(email: str | None = None) -> int:
        while True:
            try:
                async with db_conn.transaction():
                    made = f"factory{next(numbers)}@example.com" if email is None else email
                    return await shop.create_user(db_conn, made, "F")
            except shop.EmailTaken:
                if email is not None:
                    raise

    yield make


@wrong("7.2", hint="a new user could not be made")
@pytest.fixture
def make_user_global_random(db_conn):
    """Default emails from 64 random bits of the global random generator: a test that reseeds it gets them again."""

    async def make(email: str | None = None) -> int:
        return await shop.create_user(db_conn, email or f"user-{random.getrandbits(64):x}@example.com", "User")

    return make


@right("7.1")
async def cancel_order_join_for_update_of_orders(conn, order_id: int) -> bool:
    """Joins users (the order of an existing user) but locks only the order: FOR UPDATE OF o."""
    async with conn.transaction():
        status = await conn.fetchval(
            "SELECT o.status::text FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = $1 FOR UPDATE OF o",
            order_id,
        )
        if status not in ("pending", "paid"):
            return False
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order_id)
        return True


@right("7.2")
@pytest.fixture
async def make_user_token_hex(db_conn):
    """An async fixture, keyword-only email with a None sentinel, emails from secrets.token_hex(16): 128 bits from the
    OS, not the seeded generator."""

    async def make(*, email: str | None = None) -> int:
        if email is None:
            email = f"u-{secrets.token_hex(16)}@example.com"
        return await shop.create_user(db_conn, email, "Test User")

    return make
