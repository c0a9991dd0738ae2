"""Answers to notebook 02 (exercises 2.1 and 2.2): wrong ones its checkers must reject, right ones they accept."""

import asyncpg

from coursebook.answers import wrong


@wrong("2.1", hint="the connection was not given back")
async def find_email_leaky(pool, user_id):
    """The notebook's leaky_find_email: release() is skipped when the query raises."""
    conn = await pool.acquire()
    email = await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)
    await pool.release(conn)
    return email


@wrong("2.1", hint="its connection is still lent out")
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


@wrong("2.1", hint="there is no user with that id")
async def find_email_hard_coded(pool, user_id):
    """Returns the email the first test looks for."""
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)
    return "ada@example.com"


@wrong("2.1", hint="returned None for")
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
