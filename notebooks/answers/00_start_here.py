"""Answers to notebook 00 (exercises 0.1 and 0.2): wrong ones its checkers must reject, right ones they accept."""

from coursebook.answers import wrong


@wrong("0.1", hint="count_users returned None")
async def count_users_empty_body(conn) -> int:
    """Ran the cell without writing a body."""


@wrong("0.1", hint="with 2 users in the table, count_users returned 0")
async def count_users_hard_coded(conn) -> int:
    """Returns what the first test expects."""
    return 0


@wrong("0.1", hint="was not awaited")
async def count_users_without_await(conn) -> int:
    """Forgot await: returns the coroutine."""
    return conn.fetchval("SELECT count(*) FROM users")


@wrong("0.1", hint="not an int")
async def count_users_fetchrow(conn) -> int:
    """Returns the whole row, not the value."""
    return await conn.fetchrow("SELECT count(*) FROM users")


@wrong("0.1", hint="not an int")
async def count_users_fetch(conn) -> int:
    """Returns the list of rows."""
    return await conn.fetch("SELECT count(*) FROM users")


@wrong("0.2", hint="O'Brien")
async def add_user_f_string(conn, email: str, name: str) -> int:
    """Puts the values into the SQL text."""
    return await conn.fetchval(f"INSERT INTO users (email, name) VALUES ('{email}', '{name}') RETURNING id")


@wrong("0.2", hint="add_user returned 'INSERT 0 1'")
async def add_user_execute(conn, email: str, name: str) -> int:
    """execute() returns the command status, not the id."""
    return await conn.execute("INSERT INTO users (email, name) VALUES ($1, $2)", email, name)


@wrong("0.2", hint="but the new row's id is")
async def add_user_hard_coded_id(conn, email: str, name: str) -> int:
    """Assumes the first user gets id 1."""
    await conn.execute("INSERT INTO users (email, name) VALUES ($1, $2)", email, name)
    return 1


@wrong("0.2", hint="but the new row's id is")
async def add_user_count_as_id(conn, email: str, name: str) -> int:
    """Takes the number of users for the new id."""
    await conn.execute("INSERT INTO users (email, name) VALUES ($1, $2)", email, name)
    return await conn.fetchval("SELECT count(*) FROM users")


@wrong("0.2", hint="add_user returned None")
async def add_user_no_return(conn, email: str, name: str) -> int:
    """Inserts, forgets to return anything."""
    await conn.fetchval("INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id", email, name)
