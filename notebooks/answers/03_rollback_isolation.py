"""Answers to notebook 03 (exercises 3.1 and 3.2): wrong ones its checkers must reject, right ones they accept."""

import asyncio
import contextlib
import types

from coursebook.answers import right, wrong
from coursebook.mutants import equivalent


@wrong("3.2", hint="older created_at")
async def newest_user_by_id(conn) -> str | None:
    """Newest = highest id; an imported user breaks that."""
    return await conn.fetchval("SELECT email FROM users ORDER BY id DESC LIMIT 1")


@wrong("3.2", hint="break the tie")
async def newest_user_by_created_at_only(conn) -> str | None:
    """Sorts by created_at alone: rows of one transaction tie."""
    return await conn.fetchval("SELECT email FROM users ORDER BY created_at DESC LIMIT 1")


@wrong("3.2", hint="break the tie")
async def newest_user_max_created_at(conn) -> str | None:
    """Any user with the latest created_at."""
    return await conn.fetchval("SELECT email FROM users WHERE created_at = (SELECT max(created_at) FROM users)")


@wrong("3.2", hint="returned a Record")
async def newest_user_record(conn) -> str | None:
    """Returns the row, not the email."""
    return await conn.fetchrow("SELECT email FROM users ORDER BY created_at DESC, id DESC LIMIT 1")


@wrong("3.2", hint="newest_user returned None")
async def newest_user_do_nothing(conn) -> str | None:
    """An empty table gives None, so None it is."""
    return None


@wrong("3.1", hint="has no acquire() method")
def pool_sharing_the_connection(conn):
    """Hands over the connection itself."""
    return conn


@wrong("3.1", hint="'async with' cannot use")
def pool_sharing_plain_acquire(conn):
    """acquire() returns the connection, not something for 'async with'."""
    return types.SimpleNamespace(acquire=lambda: conn)


@wrong("3.1", hint="'async with' cannot use")
def pool_sharing_coroutine_acquire(conn):
    """acquire() is a coroutine function."""

    class Sharing:
        async def acquire(self):
            return conn

    return Sharing()


@wrong("3.1", hint="closed the test's connection")
def pool_sharing_closes(conn):
    """Cleans up after itself: closes the connection it lent."""

    @contextlib.asynccontextmanager
    async def acquire():
        try:
            yield conn
        finally:
            await conn.close()

    return types.SimpleNamespace(acquire=acquire)


@wrong("3.1", hint="has no acquire() method")
def pool_sharing_empty_body(conn):
    """Ran the cell without writing a body."""


# --- friendly data: right only for the rows the author inserted -----------------------------------


@wrong("3.2", hint="1 µs later")
async def newest_user_to_the_second(conn) -> str | None:
    """Compares sign-up times to the second, then the id: users of the same second count as a tie."""
    return await conn.fetchval(
        "SELECT email FROM users ORDER BY date_trunc('second', created_at) DESC, id DESC LIMIT 1"
    )


@wrong("3.2", hint="newest_user returned")
async def newest_user_tie_to_the_first(conn) -> str | None:
    """Breaks the tie the other way: the lowest id."""
    return await conn.fetchval("SELECT email FROM users ORDER BY created_at DESC, id LIMIT 1")


@wrong("3.2", hint="not the order rows come back in")
async def newest_user_in_python_by_time(conn) -> str | None:
    """Fetches everyone and keeps the last row with the latest time, in whatever order the rows came."""
    newest = None
    for row in await conn.fetch("SELECT email, created_at FROM users"):
        if newest is None or row["created_at"] >= newest["created_at"]:
            newest = row
    return None if newest is None else newest["email"]


@wrong("3.1", hint="must not swallow it")
def pool_sharing_swallows_errors(conn):
    """A small class of its own, whose __aexit__ returns True: every error inside the block disappears."""

    class Lend:
        async def __aenter__(self):
            return conn

        async def __aexit__(self, *exc_info):
            return True

    return types.SimpleNamespace(acquire=Lend)


@wrong("3.1", hint="can be used any number of times")
def pool_sharing_one_context(conn):
    """One context manager made up front and handed out every time: a generator runs only once."""

    @contextlib.asynccontextmanager
    async def lend():
        yield conn

    once = lend()
    return types.SimpleNamespace(acquire=lambda: once)


@wrong("3.1", hint="ended the test's transaction")
def pool_sharing_commits(conn):
    """Commits what the service did when the block ends, as a real pool's connection would have."""

    @contextlib.asynccontextmanager
    async def acquire():
        yield conn
        await conn.execute("COMMIT")

    return types.SimpleNamespace(acquire=acquire)


# --- written blind by an outside learner, and accepted until the checker broke their data ----------


@wrong("3.1", hint="acquire() added a transaction of its own")
def pool_sharing_savepoint_per_block(conn):
    """Wraps every block in conn.transaction(), a savepoint: an error undoes what the block wrote before it,
    which a real pool's connection keeps, so a test of a half-done sign-up passes when the app has the bug."""

    @contextlib.asynccontextmanager
    async def acquire():
        async with conn.transaction():
            yield conn

    return types.SimpleNamespace(acquire=acquire)


@wrong("3.1", hint="reset the test's connection")
def pool_sharing_resets_like_a_pool(conn):
    """Resets the connection when the block ends, as a pool does on release: the test's own settings go too."""

    @contextlib.asynccontextmanager
    async def acquire():
        try:
            yield conn
        finally:
            await conn.execute("RESET ALL; UNLISTEN *")

    return types.SimpleNamespace(acquire=acquire)


@wrong("3.1", hint="acquire() inside acquire() waited")
def pool_sharing_one_borrower_at_a_time(conn):
    """Lends the connection to one borrower at a time, with a lock: an acquire() inside another waits for ever."""
    lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def acquire():
        async with lock:
            yield conn

    return types.SimpleNamespace(acquire=acquire)


@wrong("3.2", hint="break the tie")
async def newest_user_tie_by_email(conn) -> str | None:
    """Breaks the created_at tie by email: right only while emails sort in the order the users were inserted."""
    return await conn.fetchval("SELECT email FROM users ORDER BY created_at DESC, email DESC LIMIT 1")


@wrong("3.2", hint="Europe/Berlin")
async def newest_user_by_the_text_of_created_at(conn) -> str | None:
    """Sorts created_at as text, as the session's time zone spells it: wrong in the hour a clock goes back."""
    return await conn.fetchval("SELECT email FROM users ORDER BY created_at::text DESC, id DESC LIMIT 1")


# --- written blind by outside engineers (second round and its holdout), and new near-misses ----------


@wrong("3.1", hint="left a connection that had no transaction inside one it opened")
def pool_sharing_begins_if_idle(conn):
    """Starts a transaction when the connection has none, 'so the test's rollback undoes it', and never ends it."""

    @contextlib.asynccontextmanager
    async def acquire():
        if not conn.is_in_transaction():
            await conn.transaction().start()
        yield conn

    return types.SimpleNamespace(acquire=acquire)


@wrong("3.1", hint="reached the caller as (type, constraint_name, detail) = ('InFailedSQLTransactionError'")
def pool_sharing_marks_each_borrow(conn):
    """A raw SAVEPOINT per borrow, RELEASEd on the way out whatever happened: after a server error the RELEASE fails
    and replaces the borrower's error, and without a transaction SAVEPOINT fails."""

    @contextlib.asynccontextmanager
    async def acquire():
        await conn.execute("SAVEPOINT lender")
        try:
            yield conn
        finally:
            await conn.execute("RELEASE SAVEPOINT lender")

    return types.SimpleNamespace(acquire=acquire)


@wrong("3.1", hint="a copy")
def pool_sharing_raises_a_clean_copy(conn):
    """Re-raises a 'clean' copy of the block's exception (type(exc)(*exc.args)): what the error carried is gone."""

    @contextlib.asynccontextmanager
    async def acquire():
        try:
            yield conn
        except Exception as exc:
            raise type(exc)(*exc.args) from None

    return types.SimpleNamespace(acquire=acquire)


@wrong("3.1", hint="sent statements of its own to the server")
def pool_sharing_checks_the_connection_first(conn):
    """A health check ('SELECT 1', as pools that pre-ping do) before lending: in a failed transaction it raises
    instead of lending, and it is a statement the caller never sent."""

    @contextlib.asynccontextmanager
    async def acquire():
        await conn.execute("SELECT 1")
        yield conn

    return types.SimpleNamespace(acquire=acquire)


@wrong("3.1", hint="acquire() reset the test's connection")
def pool_sharing_names_the_borrower(conn):
    """Tags the borrowed session with SET LOCAL application_name = 'service', so logs show who ran what: the caller's
    own setting is overwritten for the rest of its transaction."""

    @contextlib.asynccontextmanager
    async def acquire():
        await conn.execute("SET LOCAL application_name = 'service'")
        yield conn

    return types.SimpleNamespace(acquire=acquire)


@wrong("3.2", hint="ids of different lengths")
async def newest_user_ties_by_text_id(conn) -> str | None:
    """Python max by (created_at, str(id)): among tied rows id 9 beats id 10."""
    rows = await conn.fetch("SELECT email, created_at, id FROM users")
    if not rows:
        return None
    return max(rows, key=lambda row: (row["created_at"], str(row["id"])))["email"]


@wrong("3.2", hint="names that sort against the ids")
async def newest_user_ties_by_name_first(conn) -> str | None:
    """Among users who share created_at, orders by name before id."""
    return await conn.fetchval("SELECT email FROM users ORDER BY created_at DESC, name DESC, id DESC LIMIT 1")


@wrong("3.2", hint="a microsecond apart far in the future")
async def newest_user_by_float_seconds(conn) -> str | None:
    """Python max by (created_at.timestamp(), id): far in the future a float of seconds no longer holds microseconds."""
    rows = await conn.fetch("SELECT email, created_at, id FROM users")
    if not rows:
        return None
    return max(rows, key=lambda row: (row["created_at"].timestamp(), row["id"]))["email"]


@wrong("3.2", hint="only users who signed up long ago")
async def newest_user_of_the_last_ten_years(conn) -> str | None:
    """'Skip junk rows': only users of the last ten years are candidates, so with only older users there is none."""
    return await conn.fetchval(
        "SELECT email FROM users WHERE created_at > now() - interval '10 years'"
        " ORDER BY created_at DESC, id DESC LIMIT 1"
    )


@wrong("3.2", hint="a microsecond apart far in the future")
async def newest_user_not_from_the_future(conn) -> str | None:
    """'A sign-up in the future is a bad clock': skips users whose created_at is after now()."""
    return await conn.fetchval(
        "SELECT email FROM users WHERE created_at <= now() ORDER BY created_at DESC, id DESC LIMIT 1"
    )


@wrong("3.2", hint="ids of different lengths")
async def newest_user_ties_by_id_as_text(conn) -> str | None:
    """Breaks the tie by id::text ('the id as the app shows it'): '9' sorts after '10'."""
    return await conn.fetchval("SELECT email FROM users ORDER BY created_at DESC, id::text DESC LIMIT 1")


@wrong("3.1", hint="query logger added to it")
def pool_sharing_traces_every_borrow(conn):
    """Adds a query logger to the lent connection on every acquire() 'to trace the service' and never removes it: the
    caller's connection collects one more logger per borrow, each called on every later query."""

    @contextlib.asynccontextmanager
    async def acquire():
        conn.add_query_logger(lambda record: None)
        yield conn

    return types.SimpleNamespace(acquire=acquire)


# --- right answers, written another way than the model -------------------------------------------


@right("3.1")
def pool_sharing_as_a_class(conn):
    """A class with acquire(), returning a small async context manager of its own."""

    class Lent:
        async def __aenter__(self):
            return conn

        async def __aexit__(self, *exc_info):
            return False

    class SharedPool:
        def acquire(self):
            return Lent()

    return SharedPool()


@right("3.1")
def pool_sharing_null_context(conn):
    """contextlib.nullcontext works in 'async with' too, and gives back what it was given."""
    return types.SimpleNamespace(acquire=lambda: contextlib.nullcontext(conn))


@right("3.2")
async def newest_user_row_comparison(conn) -> str | None:
    """Orders by the pair (created_at, id), newest first."""
    return await conn.fetchval("SELECT email FROM users ORDER BY (created_at, id) DESC LIMIT 1")


@right("3.2")
async def newest_user_latest_time_then_id(conn) -> str | None:
    """The latest created_at first, then the highest id among the users who have it."""
    return await conn.fetchval(
        """
        SELECT email FROM users
        WHERE created_at = (SELECT max(created_at) FROM users)
        ORDER BY id DESC
        LIMIT 1
        """
    )


@right("3.2")
async def newest_user_in_python(conn) -> str | None:
    """Fetches the users and picks the newest in Python, by the same two keys."""
    rows = await conn.fetch("SELECT email, created_at, id FROM users")
    if not rows:
        return None
    return max(rows, key=lambda row: (row["created_at"], row["id"]))["email"]


@right("3.2")
async def newest_user_by_exact_epoch(conn) -> str | None:
    """ORDER BY extract(epoch ...): numeric since PostgreSQL 14, so exact to the microsecond, then the id."""
    return await conn.fetchval("SELECT email FROM users ORDER BY extract(epoch FROM created_at) DESC, id DESC LIMIT 1")


# --- mutants of the model answer that behave exactly like it ------------------------------------------

FETCHVAL_READS_ONE_ROW = "fetchval returns the first column of the first row: rows after the first change nothing"
equivalent("3.2", "sql-limit: no LIMIT", reason=FETCHVAL_READS_ONE_ROW)
equivalent("3.2", "sql-limit: LIMIT 2", reason=FETCHVAL_READS_ONE_ROW)
