"""Answers to notebook 02 (exercises 2.1 and 2.2): wrong ones its checkers must reject, right ones they accept."""

import asyncio

import asyncpg

from coursebook.answers import right, wrong


@wrong("2.1", hint="the connection was not given back")
async def find_email_leaky(pool, user_id):
    """The notebook's leaky_find_email: release() is skipped when the query raises."""
    conn = await pool.acquire()
    email = await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)
    await pool.release(conn)
    return email


@wrong("2.1", hint="a connection is still lent out")
async def find_email_never_released(pool, user_id):
    """Acquires and never gives back."""
    conn = await pool.acquire()
    return await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)


@wrong("2.1", hint="let errors reach the caller")
async def find_email_swallows_errors(pool, user_id):
    """Returns None for every error, the DataError included."""
    try:
        async with pool.acquire() as conn:
            return await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)
    except Exception:
        return None


@wrong("2.1", hint="there is no user with the id 8")
async def find_email_hard_coded(pool, user_id):
    """Returns the email the first test looks for."""
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)
    return "ada@example.com"


@wrong("2.1", hint="find_email returned None for")
async def find_email_no_return(pool, user_id):
    """Queries, forgets to return the result."""
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)


@wrong("2.2", hint="the reset on release")
async def create_guarded_pool_init(dsn):
    """The notebook's warned mistake: SET in init=."""

    async def set_timeout(conn):
        await conn.execute("SET statement_timeout = '500ms'")

    return await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=set_timeout)


@wrong("2.2", hint="for everyone")
async def create_guarded_pool_alter_database(dsn):
    """Changes the database's default: every other connection gets it too."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET statement_timeout = %L', "
            "current_database(), '500ms'); END $$"
        )
    finally:
        await conn.close()
    return await asyncpg.create_pool(dsn, min_size=1, max_size=2)


@wrong("2.2", hint="for everyone")
async def create_guarded_pool_alter_role(dsn):
    """Changes the role's default: every connection of that user gets it."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ALTER ROLE CURRENT_USER SET statement_timeout = '500ms'")
    finally:
        await conn.close()
    return await asyncpg.create_pool(dsn, min_size=1, max_size=2)


@wrong("2.2", hint="command_timeout")
async def create_guarded_pool_command_timeout(dsn):
    """asyncpg's client-side command_timeout: the server never hears of it."""
    return await asyncpg.create_pool(dsn, min_size=1, max_size=2, command_timeout=0.5)


@wrong("2.2", hint="min_size=1 and max_size=2")
async def create_guarded_pool_default_sizes(dsn):
    """The right setting, the pool sizes forgotten."""
    return await asyncpg.create_pool(dsn, server_settings={"statement_timeout": "500ms"})


@wrong("2.2", hint="never got a statement_timeout")
async def create_guarded_pool_plain(dsn):
    """A pool without any timeout."""
    return await asyncpg.create_pool(dsn, min_size=1, max_size=2)


# --- no leftovers: right on the path the author tried, a leak on another ---------------------------


@wrong("2.1", hint="after find_email found no user, a connection is still lent out")
async def find_email_releases_only_when_found(pool, user_id):
    """Gives the connection back on the way out with an email; the early return for no user forgets it."""
    conn = await pool.acquire()
    try:
        email = await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)
    except asyncpg.PostgresError:
        await pool.release(conn)
        raise
    if email is None:
        return None
    await pool.release(conn)
    return email


@wrong("2.1", hint="there is no user with the id 8")
async def find_email_first_user(pool, user_id):
    """fetchval with a query that ignores the id when it finds nothing: returns the first user instead."""
    async with pool.acquire() as conn:
        email = await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)
        return email or await conn.fetchval("SELECT email FROM users ORDER BY id LIMIT 1")


@wrong("2.2", hint="statement_timeout of six borrowers in turn: ['5s'")
async def create_guarded_pool_in_seconds(dsn):
    """A bare number in a SET: 5000 milliseconds, not the half second asked for."""

    async def set_timeout(conn):
        await conn.execute("SET statement_timeout = 5000")

    return await asyncpg.create_pool(dsn, min_size=1, max_size=2, setup=set_timeout)


@wrong("2.2", hint="cancelled a 300 ms query")
async def create_guarded_pool_too_tight(dsn):
    """50 ms, to be safe: the server then cancels queries that were meant to run."""
    return await asyncpg.create_pool(dsn, min_size=1, max_size=2, server_settings={"statement_timeout": "50ms"})


@wrong("2.2", hint="never got a statement_timeout")
async def create_guarded_pool_lock_timeout(dsn):
    """The timeout for waiting on locks, not for running statements."""
    return await asyncpg.create_pool(dsn, min_size=1, max_size=2, server_settings={"lock_timeout": "500ms"})


# --- written blind by an outside learner: leftovers on paths the checker did not take ---------------


@wrong("2.1", hint="cancelled")
async def find_email_releases_on_exceptions(pool, user_id):
    """Gives the connection back on success and in `except Exception`: a cancelled call (a request's timeout)
    raises CancelledError, which is no Exception, and keeps the connection for ever."""
    conn = await pool.acquire()
    try:
        email = await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)
    except Exception:
        await pool.release(conn)
        raise
    await pool.release(conn)
    return email


@wrong("2.1", hint="closed the connection it borrowed")
async def find_email_closes_the_connection(pool, user_id):
    """Closes the borrowed connection instead of giving it back: nothing looks lent, but every call costs the
    pool a new connection, and the server a new process."""
    conn = await pool.acquire()
    try:
        return await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)
    finally:
        await conn.close()


@wrong("2.2", hint="the borrower before it")
async def create_guarded_pool_keeps_every_session(dsn):
    """SET in init= and a reset= that does nothing, so the SET survives: and so does whatever a borrower sets
    itself (statement_timeout = 0 for a migration), its advisory locks and its LISTENs."""

    async def set_timeout(conn):
        await conn.execute("SET statement_timeout = '500ms'")

    async def keep_everything(conn):
        pass

    return await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=set_timeout, reset=keep_everything)


@wrong("2.2", hint="left a connection open")
async def create_guarded_pool_tries_the_setting_first(dsn):
    """Opens a connection of its own to see that the server takes the setting, and never closes it."""
    probe = await asyncpg.connect(dsn, server_settings={"statement_timeout": "500ms"})
    assert await probe.fetchval("SHOW statement_timeout") == "500ms"
    return await asyncpg.create_pool(dsn, min_size=1, max_size=2, server_settings={"statement_timeout": "500ms"})


# --- written blind by outside engineers (second round and its holdout), and new near-misses ----------


@wrong("2.1", hint="did not end with CancelledError")
async def find_email_acquires_inside_the_try(pool, user_id):
    """acquire() inside the try whose finally releases: when the acquire itself is cancelled, the finally finds no
    `conn` and raises UnboundLocalError instead of the cancellation."""
    try:
        conn = await pool.acquire()
        return await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)
    finally:
        await pool.release(conn)  # unbound when acquire() raised: the mistake itself


@wrong("2.1", hint="a busy pool is no missing user")
async def find_email_busy_pool_means_nobody(pool, user_id):
    """acquire(timeout=1) 'so a request never hangs', its TimeoutError turned into None: under load an existing user
    is reported missing."""
    try:
        async with pool.acquire(timeout=1) as conn:
            return await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)
    except TimeoutError:
        return None


@wrong("2.1", hint="as stored")
async def find_email_lowercased(pool, user_id):
    """Lower-cases the email ('emails are case-insensitive'): 'Zoë@Example.com' is not what is stored."""
    async with pool.acquire() as conn:
        email = await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)
    return email.lower() if email is not None else None


@wrong("2.1", hint="as stored")
async def find_email_stripped(pool, user_id):
    """Strips the email ('stray spaces from the sign-up form'): what comes back is not what is stored."""
    async with pool.acquire() as conn:
        email = await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)
    return email.strip() if email is not None else None


@wrong("2.1", hint="on a closed pool find_email returned None")
async def find_email_nobody_during_shutdown(pool, user_id):
    """'During shutdown just answer nothing': InterfaceError (pool closed) becomes None, as if nobody had the id."""
    try:
        async with pool.acquire() as conn:
            return await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)
    except asyncpg.InterfaceError:
        return None


@wrong("2.1", hint="a busy pool is no missing user")
async def find_email_pool_trouble_means_nobody(pool, user_id):
    """Waits for a connection at most a second with asyncio.wait_for, and calls a pool that long busy 'nobody'."""
    try:
        conn = await asyncio.wait_for(pool.acquire(), 1)
    except TimeoutError:
        return None
    try:
        return await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)
    finally:
        await pool.release(conn)


@wrong("2.2", hint="the same pool")
async def create_guarded_pool_one_per_dsn(dsn):
    """Keeps one pool per DSN in a module dict ('pools are expensive'): two callers share it, and one closing 'its'
    pool closes the other's."""
    cache = globals().setdefault("_GUARDED_POOLS", {})
    pool = cache.get(dsn)
    if pool is None or pool._closed:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, server_settings={"statement_timeout": "500ms"})
        cache[dsn] = pool
    return pool


@wrong("2.2", hint="differs from a plain connection's in more than statement_timeout")
async def create_guarded_pool_idle_transactions_too(dsn):
    """'Guard everything': idle_in_transaction_session_timeout 500ms too: a transaction that waits between two
    statements has its connection terminated."""
    return await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=2,
        server_settings={"statement_timeout": "500ms", "idle_in_transaction_session_timeout": "500ms"},
    )


@wrong("2.2", hint="differs from a plain connection's in more than statement_timeout")
async def create_guarded_pool_serializable_too(dsn):
    """Makes every transaction SERIALIZABLE as well, 'to be safe': borrowers' transactions now fail with
    serialization errors the exercise never asked them to handle."""
    return await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=2,
        server_settings={"statement_timeout": "500ms", "default_transaction_isolation": "serializable"},
    )


@wrong("2.2", hint="differs from a plain connection's in more than statement_timeout")
async def create_guarded_pool_office_time_zone(dsn):
    """Sets the office's time zone too, 'so times read right': every borrower's timestamps now print, truncate and
    cast to dates in Berlin time, which nothing asked for."""
    return await asyncpg.create_pool(
        dsn, min_size=1, max_size=2, server_settings={"statement_timeout": "500ms", "timezone": "Europe/Berlin"}
    )


# --- right answers, written another way than the model -------------------------------------------


@right("2.1")
async def find_email_with_finally(pool, user_id):
    """acquire() and release() by hand, the release in a finally."""
    conn = await pool.acquire()
    try:
        return await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)
    finally:
        await pool.release(conn)


@right("2.1")
async def find_email_through_the_pool(pool, user_id):
    """The pool's own fetchrow: it acquires and releases by itself."""
    row = await pool.fetchrow("SELECT email FROM users WHERE id = $1", user_id)
    return None if row is None else row["email"]


@right("2.2")
async def create_guarded_pool_setup_hook(dsn):
    """SET in setup=, which runs on every acquire, after the previous borrower's reset."""

    async def every_borrower(conn):
        await conn.execute("SET statement_timeout = '500ms'")

    return await asyncpg.create_pool(dsn, min_size=1, max_size=2, setup=every_borrower)


@right("2.2")
async def create_guarded_pool_half_a_second(dsn):
    """server_settings in seconds: the server stores it as 500ms."""
    return await asyncpg.create_pool(dsn, server_settings={"statement_timeout": "0.5s"}, max_size=2, min_size=1)


@right("2.1")
async def find_email_with_a_guarded_finally(pool, user_id):
    """acquire() inside the try, the release in a finally only once something was acquired."""
    conn = None
    try:
        conn = await pool.acquire()
        return await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)
    finally:
        if conn is not None:
            await pool.release(conn)


@right("2.2")
async def create_guarded_pool_in_milliseconds(dsn):
    """server_settings with a bare number: statement_timeout's unit is milliseconds."""
    return await asyncpg.create_pool(dsn, min_size=1, max_size=2, server_settings={"statement_timeout": "500"})
