"""Answers to notebook 00 (exercises 0.1 and 0.2): wrong ones its checkers must reject, right ones they accept."""

from coursebook.answers import right, wrong


@wrong("0.1", hint="count_users returned None")
async def count_users_empty_body(conn) -> int:
    """Ran the cell without writing a body."""


@wrong("0.1", hint="count_users returned 0")
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


# --- friendly data: right only while ids run 1, 2, 3 and names differ ------------------------------


@wrong("0.1", hint="with 5 users in the table, count_users returned 2000000000")
async def count_users_highest_id(conn) -> int:
    """The highest id is the number of users, as long as nobody was ever deleted."""
    return await conn.fetchval("SELECT coalesce(max(id), 0) FROM users")


@wrong("0.1", hint="with 5 users in the table, count_users returned 3")
async def count_users_distinct_names(conn) -> int:
    """Counts the different names: two people can share a name."""
    return await conn.fetchval("SELECT count(DISTINCT name) FROM users")


@wrong("0.1", hint="with 2 users (and 3 orders) in the tables, count_users returned 4")
async def count_users_with_their_orders(conn) -> int:
    """Joins the orders in, so a user with three orders counts three times."""
    return await conn.fetchval("SELECT count(*) FROM users LEFT JOIN orders ON orders.user_id = users.id")


@wrong("0.2", hint="but the new row's id is")
async def add_user_highest_id(conn, email: str, name: str) -> int:
    """The new row has the highest id: true until someone inserts an id by hand."""
    await conn.execute("INSERT INTO users (email, name) VALUES ($1, $2)", email, name)
    return await conn.fetchval("SELECT max(id) FROM users")


@wrong("0.2", hint="but the new row's id is")
async def add_user_looks_up_the_name(conn, email: str, name: str) -> int:
    """Finds the new row by its name: two Adas share one."""
    await conn.execute("INSERT INTO users (email, name) VALUES ($1, $2)", email, name)
    return await conn.fetchval("SELECT id FROM users WHERE name = $1 ORDER BY id LIMIT 1", name)


@wrong("0.2", hint="store it exactly")
async def add_user_tidies_the_name(conn, email: str, name: str) -> int:
    """Tidies names up first: strips the spaces, capitalises the words."""
    return await conn.fetchval(
        "INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id", email, name.strip().title()
    )


@wrong("0.2", hint="added 2 rows")
async def add_user_twice(conn, email: str, name: str) -> int:
    """Inserts, then inserts again to get the id (the second with another email so it is accepted)."""
    await conn.execute("INSERT INTO users (email, name) VALUES ($1, $2)", email, name)
    return await conn.fetchval(
        "INSERT INTO users (email, name) VALUES ($1 || '.copy', $2) RETURNING id - 1", email, name
    )


# --- written blind by an outside learner, and accepted until the checker broke their data ----------


@wrong("0.1", hint="with 5 users in the table, count_users returned")
async def count_users_grouped_by_name(conn) -> int:
    """A per-name report's query: the count of the first group of names, right only while everyone shares one."""
    return await conn.fetchval("SELECT count(*) FROM users GROUP BY name") or 0


@wrong("0.1", hint="with 5 users in the table, count_users returned 4")
async def count_users_signed_up_until_now(conn) -> int:
    """Counts only users who signed up by now(): a user imported from a clock that runs ahead is left out."""
    return await conn.fetchval("SELECT count(*) FROM users WHERE created_at <= now()")


@wrong("0.2", hint="not its own new row's id")
async def add_user_sequence_last_value(conn, email: str, name: str) -> int:
    """Inserts, then reads the sequence's last_value, which is the latest id ANY connection took."""
    await conn.execute("INSERT INTO users (email, name) VALUES ($1, $2)", email, name)
    return await conn.fetchval("SELECT last_value FROM users_id_seq")


@wrong("0.2", hint="a taken email")
async def add_user_upsert(conn, email: str, name: str) -> int:
    """ON CONFLICT DO UPDATE: a taken email renames that user and returns their old id, adding nobody."""
    return await conn.fetchval(
        "INSERT INTO users (email, name) VALUES ($1, $2)"
        " ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        email,
        name,
    )


@wrong("0.2", hint="a taken email")
async def add_user_do_nothing_on_conflict(conn, email: str, name: str) -> int:
    """ON CONFLICT DO NOTHING: a taken email adds nobody and returns None, and the caller never hears of it."""
    return await conn.fetchval(
        "INSERT INTO users (email, name) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING id", email, name
    )


@wrong("0.2", hint="broke the SQL")
async def add_user_escapes_only_the_name(conn, email: str, name: str) -> int:
    """Doubles the quotes in the name and pastes the email as it is: o'brien@example.com breaks the SQL."""
    safe_name = name.replace("'", "''")
    return await conn.fetchval(f"INSERT INTO users (email, name) VALUES ('{email}', '{safe_name}') RETURNING id")


# --- written blind by outside engineers (second round and its holdout): friendly data, no transaction ----


@wrong("0.1", hint="on a connection with no transaction open, count_users raised NoActiveSQLTransactionError")
async def count_users_with_a_cursor(conn) -> int:
    """Counts through a server-side cursor: a cursor needs a transaction, so on a pool's connection it raises."""
    n = 0
    async for _ in conn.cursor("SELECT 1 FROM users"):
        n += 1
    return n


@wrong("0.1", hint="whatever its email looks like")
async def count_users_distinct_lower_emails(conn) -> int:
    """Counts people by lower(email): 'Ada@x' and 'ada@x' are two rows (the column is case-sensitive), counted once."""
    return await conn.fetchval("SELECT count(DISTINCT lower(email)) FROM users")


@wrong("0.1", hint="with 10001 users in the table, count_users returned 1000")
async def count_users_with_a_safety_limit(conn) -> int:
    """Fetches the ids with a 'safety' LIMIT 1000: 1001 users count as 1000."""
    return len(await conn.fetch("SELECT id FROM users LIMIT 1000"))


@wrong("0.1", hint="whatever its email looks like")
async def count_users_with_an_at_sign(conn) -> int:
    """Counts only 'real' users, whose email has an '@': an imported row without one is still a user."""
    return await conn.fetchval("SELECT count(*) FROM users WHERE email LIKE '%@%'")


@wrong("0.1", hint="whatever its email looks like")
async def count_users_with_an_email(conn) -> int:
    """Skips rows whose email is blank ('no email, no account'): the column takes '', and that row is a user."""
    return await conn.fetchval("SELECT count(*) FROM users WHERE trim(email) <> ''")


@wrong("0.1", hint="with 10001 users in the table, count_users returned 10000")
async def count_users_in_pages(conn) -> int:
    """Counts page by page, 'at most 10 pages of 1000': a table bigger than that is counted short."""
    total = 0
    for page in range(10):
        rows = await conn.fetch("SELECT id FROM users ORDER BY id LIMIT 1000 OFFSET $1", page * 1000)
        total += len(rows)
        if len(rows) < 1000:
            break
    return total


@wrong("0.2", hint="but the new row's id is")
async def add_user_looks_up_lower_email(conn, email: str, name: str) -> int:
    """Looks the new id up by lower(email): next to an existing 'Ada@example.com' it returns the OLD user's id."""
    await conn.execute("INSERT INTO users (email, name) VALUES ($1, $2)", email, name)
    return await conn.fetchval("SELECT id FROM users WHERE lower(email) = lower($1) ORDER BY id LIMIT 1", email)


@wrong("0.2", hint="store it exactly")
async def add_user_normalises_unicode(conn, email: str, name: str) -> int:
    """Stores the name in NFC ('tidy Unicode'): a name typed with a combining mark is stored as another string."""
    import unicodedata

    return await conn.fetchval(
        "INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id", email, unicodedata.normalize("NFC", name)
    )


@wrong("0.2", hint="10000 characters) was stored as")
async def add_user_cuts_long_names(conn, email: str, name: str) -> int:
    """Cuts names to 100 characters ('a sane limit'): a longer name is not stored as given."""
    return await conn.fetchval("INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id", email, name[:100])


@wrong("0.2", hint="a user needs a name")
async def add_user_refuses_an_empty_name(conn, email: str, name: str) -> int:
    """Refuses an empty name: the column takes '' and the exercise says whatever their name."""
    if not name:
        raise ValueError("a user needs a name")
    return await conn.fetchval("INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id", email, name)


@wrong("0.2", hint="store it exactly")
async def add_user_names_after_the_email(conn, email: str, name: str) -> int:
    """Gives a user without a name the email's local part: the empty name is not stored as given."""
    name = name.strip() or email.split("@")[0]
    return await conn.fetchval("INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id", email, name)


@wrong("0.2", hint="but the new row's id is")
async def add_user_looks_up_with_ilike(conn, email: str, name: str) -> int:
    """Finds the new row with email ILIKE $1: another case of the address (and '_' or '%' in it) matches too."""
    await conn.execute("INSERT INTO users (email, name) VALUES ($1, $2)", email, name)
    return await conn.fetchval("SELECT id FROM users WHERE email ILIKE $1 ORDER BY id LIMIT 1", email)


@wrong("0.1", hint="enable_seqscan is 'off' after the call")
async def count_users_through_the_index(conn) -> int:
    """'Count through the index': SET enable_seqscan = off first and never back, so the caller's session keeps a
    planner setting that makes every later query avoid sequential scans."""
    await conn.execute("SET enable_seqscan = off")
    return await conn.fetchval("SELECT count(*) FROM users")


@wrong("0.2", hint="synchronous_commit is 'off' after the call")
async def add_user_without_waiting_for_the_disk(conn, email: str, name: str) -> int:
    """SET LOCAL synchronous_commit = off 'for fast inserts': the setting outlives the call, so the caller's whole
    transaction commits without waiting for the WAL flush."""
    await conn.execute("SET LOCAL synchronous_commit = off")
    return await conn.fetchval("INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id", email, name)


# --- right answers, written another way than the model -------------------------------------------


@right("0.1")
async def count_users_by_fetching_the_rows(conn) -> int:
    """Fetches every id and counts them in Python."""
    rows = await conn.fetch("SELECT id FROM users")
    return len(rows)


@right("0.1")
async def count_users_from_a_named_column(conn) -> int:
    """fetchrow with a named column, counting a NOT NULL column."""
    row = await conn.fetchrow("SELECT count(email) AS how_many FROM users")
    return row["how_many"]


@right("0.2")
async def add_user_then_currval(conn, email: str, name: str) -> int:
    """Inserts, then asks the sequence what it just gave this session."""
    await conn.execute("INSERT INTO users (email, name) VALUES ($1, $2)", email, name)
    return await conn.fetchval("SELECT currval(pg_get_serial_sequence('users', 'id'))")


@right("0.2")
async def add_user_then_by_email(conn, email: str, name: str) -> int:
    """Inserts, then looks the row up by its email, which is unique."""
    await conn.execute("INSERT INTO users (email, name) VALUES ($1, $2)", email, name)
    row = await conn.fetchrow("SELECT id FROM users WHERE email = $1", email)
    return row["id"]


@right("0.2")
async def add_user_returning_the_row(conn, email: str, name: str) -> int:
    """RETURNING the whole row, id taken from the record."""
    row = await conn.fetchrow("INSERT INTO users (email, name) VALUES ($1, $2) RETURNING *", email, name)
    return row["id"]


@right("0.1")
async def count_users_with_a_cursor_in_its_own_transaction(conn) -> int:
    """Counts through a cursor inside a transaction of its own (a savepoint inside the caller's)."""
    n = 0
    async with conn.transaction():
        async for _ in conn.cursor("SELECT 1 FROM users", prefetch=5000):
            n += 1
    return n
