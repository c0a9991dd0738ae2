"""Answers to notebook 04 (exercises 4.1 and 4.2): wrong ones its checkers must reject, right ones they accept."""

import asyncio
from decimal import ROUND_DOWN, Decimal

import asyncpg

from coursebook.answers import right, wrong
from shop import EmailTaken, create_user, find_user_by_email, place_order


@wrong("4.1", hint="aborted")
async def import_users_without_savepoint(conn, people: list[tuple[str, str]]) -> list[str]:
    """The pitfall: catches EmailTaken in Python, the transaction is aborted on the server."""
    skipped = []
    for email, name in people:
        try:
            await create_user(conn, email, name)
        except EmailTaken:
            skipped.append(email)
    return skipped


@wrong("4.1", hint="aborted")
async def import_users_one_savepoint_for_all(conn, people: list[tuple[str, str]]) -> list[str]:
    """One savepoint around the whole loop: after the first duplicate, nothing works."""
    skipped = []
    async with conn.transaction():
        for email, name in people:
            try:
                await create_user(conn, email, name)
            except EmailTaken:
                skipped.append(email)
    return skipped


@wrong("4.1", hint="only EmailTaken means skip")
async def import_users_except_exception(conn, people: list[tuple[str, str]]) -> list[str]:
    """Savepoints, but every error counts as 'email taken'."""
    skipped = []
    for email, name in people:
        try:
            async with conn.transaction():
                await create_user(conn, email, name)
        except Exception:
            skipped.append(email)
    return skipped


@wrong("4.1", hint="after your check")
async def import_users_check_then_insert(conn, people: list[tuple[str, str]]) -> list[str]:
    """Looks first, inserts if nobody is there: another connection can insert in between."""
    skipped = []
    for email, name in people:
        if await find_user_by_email(conn, email) is not None:
            skipped.append(email)
        else:
            await create_user(conn, email, name)
    return skipped


@wrong("4.1", hint="as they were given")
async def import_users_lowercased(conn, people: list[tuple[str, str]]) -> list[str]:
    """Reports the skipped emails the way the table stores them."""
    skipped = []
    for email, name in people:
        try:
            async with conn.transaction():
                await create_user(conn, email, name)
        except EmailTaken:
            skipped.append(email.lower())
    return skipped


@wrong("4.1", hint="after importing three new people the table holds")
async def import_users_do_nothing(conn, people: list[tuple[str, str]]) -> list[str]:
    """Nobody skipped, nobody imported."""
    return []


@wrong("4.2", hint="still there")
async def place_orders_savepoint_each(conn, user_id: int, totals: list[str]) -> list[int]:
    """A savepoint per order: the good orders before the bad one stay."""
    ids = []
    for total in totals:
        async with conn.transaction():
            ids.append(await place_order(conn, user_id, total))
    return ids


@wrong("4.2", hint="the caller's transaction no longer works")
async def place_orders_no_transaction(conn, user_id: int, totals: list[str]) -> list[int]:
    """No transaction of its own: one bad order aborts the caller's whole transaction."""
    return [await place_order(conn, user_id, total) for total in totals]


@wrong("4.2", hint="the error must raise")
async def place_orders_swallows_the_error(conn, user_id: int, totals: list[str]) -> list[int]:
    """All or nothing, but the caller never hears that it was nothing."""
    try:
        async with conn.transaction():
            return [await place_order(conn, user_id, total) for total in totals]
    except asyncpg.PostgresError:
        return []


@wrong("4.2", hint="ended the caller's transaction")
async def place_orders_raw_sql(conn, user_id: int, totals: list[str]) -> list[int]:
    """The article's way: BEGIN and ROLLBACK as raw SQL."""
    await conn.execute("BEGIN")
    try:
        return [await place_order(conn, user_id, total) for total in totals]
    except asyncpg.PostgresError:
        await conn.execute("ROLLBACK")
        raise


@wrong("4.2", hint="place_orders placed [] for")
async def place_orders_do_nothing(conn, user_id: int, totals: list[str]) -> list[int]:
    """Returns an empty list."""
    return []


# --- friendly data and no real contention -----------------------------------------------------------


@wrong("4.1", hint="aborted")
async def import_users_checks_the_table_first(conn, people: list[tuple[str, str]]) -> list[str]:
    """Reads the taken emails once, then inserts the rest: a repeat inside the batch is not in that list."""
    taken = {row["email"] for row in await conn.fetch("SELECT email FROM users")}
    skipped = []
    for email, name in people:
        if email.lower() in taken:
            skipped.append(email)
            continue
        try:
            await create_user(conn, email, name)
        except EmailTaken:
            skipped.append(email)
    return skipped


@wrong("4.1", hint="EmailTaken escaped import_users")
async def import_users_locks_nothing(conn, people: list[tuple[str, str]]) -> list[str]:
    """Checks each email just before inserting it, in a savepoint: another connection still gets in between."""
    skipped = []
    for email, name in people:
        async with conn.transaction():
            if await find_user_by_email(conn, email) is not None:
                skipped.append(email)
                continue
            await create_user(conn, email, name)
    return skipped


@wrong("4.2", hint="no longer works")
async def place_orders_checks_in_python(conn, user_id: int, totals: list[str]) -> list[int]:
    """Refuses negative totals in Python first, then places without a savepoint: other failures still abort."""
    for total in totals:
        if float(total) < 0:
            raise ValueError(f"negative total {total}")
    return [await place_order(conn, user_id, total) for total in totals]


@wrong("4.2", hint="'ten'")
async def place_orders_savepoint_by_hand(conn, user_id: int, totals: list[str]) -> list[int]:
    """SAVEPOINT and ROLLBACK TO as SQL, rolled back on a server's error only: 'ten', which Python refuses, leaves the
    batch's first orders; and with no transaction open, SAVEPOINT itself is an error."""
    await conn.execute("SAVEPOINT batch")
    try:
        ids = [await place_order(conn, user_id, total) for total in totals]
    except asyncpg.PostgresError:
        await conn.execute("ROLLBACK TO SAVEPOINT batch")
        raise
    await conn.execute("RELEASE SAVEPOINT batch")
    return ids


# --- written blind by an outside learner: right inside one transaction, on the errors the checker raised --


@wrong("4.1", hint="no transaction open")
async def import_users_savepoint_statements(conn, people: list[tuple[str, str]]) -> list[str]:
    """SAVEPOINT and ROLLBACK TO SAVEPOINT by hand: on a connection with no transaction open each is an error."""
    skipped = []
    for email, name in people:
        await conn.execute("SAVEPOINT import_one")
        try:
            await create_user(conn, email, name)
        except EmailTaken:
            await conn.execute("ROLLBACK TO SAVEPOINT import_one")
            skipped.append(email)
        else:
            await conn.execute("RELEASE SAVEPOINT import_one")
    return skipped


@wrong("4.1", hint="no transaction open")
async def import_users_never_commits(conn, people: list[tuple[str, str]]) -> list[str]:
    """A transaction object per person, rolled back on EmailTaken and never committed: with no transaction
    open, the first start() is a BEGIN that stays open, and nothing is ever committed."""
    skipped = []
    for email, name in people:
        step = conn.transaction()
        await step.start()
        try:
            await create_user(conn, email, name)
        except EmailTaken:
            await step.rollback()
            skipped.append(email)
    return skipped


@wrong("4.2", hint="'ten'")
async def place_orders_rolls_back_server_errors(conn, user_id: int, totals: list[str]) -> list[int]:
    """A savepoint by hand, rolled back only on a server's error: a total Python refuses ('ten') leaves the
    savepoint open and the batch's earlier orders in place."""
    batch = conn.transaction()
    await batch.start()
    try:
        ids = [await place_order(conn, user_id, total) for total in totals]
    except asyncpg.PostgresError:
        await batch.rollback()
        raise
    await batch.commit()
    return ids


@wrong("4.2", hint="Return the ids of the orders this call placed")
async def place_orders_newest_ids(conn, user_id: int, totals: list[str]) -> list[int]:
    """executemany, then the user's newest len(totals) orders as the ids: another request's order for the
    same user, committed in between, gets mixed in."""
    async with conn.transaction():
        await conn.executemany(
            "INSERT INTO orders (user_id, total) VALUES ($1, $2::text::numeric)", [(user_id, t) for t in totals]
        )
        rows = await conn.fetch(
            "SELECT id FROM orders WHERE user_id = $1 ORDER BY id DESC LIMIT $2", user_id, len(totals)
        )
    return sorted(row["id"] for row in rows)


# --- written blind by outside learners (session 3's holdout and round 2): each breaks a general property -----


@wrong("4.1", hint="the skipped emails as given, in the order given")
async def import_users_dups_reported_last(conn, people: list[tuple[str, str]]) -> list[str]:
    """Removes repeats within the batch first (by Python's lower()) and reports them after the emails the database
    refused: [bo, BO, ADA] with ada taken gives [ADA, BO], not [BO, ADA]."""
    seen, unique, repeats = set(), [], []
    for email, name in people:
        if email.lower() in seen:
            repeats.append(email)
        else:
            seen.add(email.lower())
            unique.append((email, name))
    refused = []
    for email, name in unique:
        try:
            async with conn.transaction():
                await create_user(conn, email, name)
        except EmailTaken:
            refused.append(email)
    return refused + repeats


@wrong("4.1", hint="leave the caller's connection as it found it")
async def import_users_lock_timeout_local(conn, people: list[tuple[str, str]]) -> list[str]:
    """'An import must not hang': SET LOCAL lock_timeout = '1s', a LockNotAvailable counted as taken. The setting
    outlives the call (the caller's whole transaction keeps it), and an email another connection holds for more
    than a second, then gives up, is reported skipped though it was free."""
    await conn.execute("SET LOCAL lock_timeout = '1s'")
    skipped = []
    for email, name in people:
        try:
            async with conn.transaction():
                await create_user(conn, email, name)
        except (EmailTaken, asyncpg.LockNotAvailableError):
            skipped.append(email)
    return skipped


@wrong("4.1", hint="leaves no transaction open behind it")
async def import_users_rollback_only_on_taken(conn, people: list[tuple[str, str]]) -> list[str]:
    """A Transaction object per person, rolled back on EmailTaken only: any other error (or a cancellation) leaves
    the savepoint, or on a connection with no transaction open a whole transaction, open behind it."""
    skipped = []
    for email, name in people:
        step = conn.transaction()
        await step.start()
        try:
            await create_user(conn, email, name)
        except EmailTaken:
            await step.rollback()
            skipped.append(email)
        else:
            await step.commit()
    return skipped


@wrong("4.1", hint="with the name as given")
async def import_users_strips_text_names(conn, people: list[tuple[str, str]]) -> list[str]:
    """'Tidies' each name that is text with strip(): 'Ada ' is stored as 'Ada', not as given."""
    skipped = []
    for email, name in people:
        try:
            async with conn.transaction():
                await create_user(conn, email, name.strip() if isinstance(name, str) else name)
        except EmailTaken:
            skipped.append(email)
    return skipped


@wrong("4.1", hint="as the server's lower() makes them")
async def import_users_python_lower_seen(conn, people: list[tuple[str, str]]) -> list[str]:
    """Repeats within the batch are 'known taken' by Python's lower(), which folds every script; the course database's
    lower() (C locale) folds ASCII only, so 'Äda@…' then 'äda@…' are two users, and the second is skipped untried."""
    seen, skipped = set(), []
    for email, name in people:
        if email.lower() in seen:
            skipped.append(email)
            continue
        seen.add(email.lower())
        try:
            async with conn.transaction():
                await create_user(conn, email, name)
        except EmailTaken:
            skipped.append(email)
    return skipped


@wrong("4.2", hint="each stored as shop.place_order stores that total")
async def place_orders_quantize_half_even(conn, user_id: int, totals: list[str]) -> list[int]:
    """'Money has two decimals': quantize() rounds half to even, so '0.125' becomes 0.12 where the column (from the
    total as given) stores 0.13."""
    async with conn.transaction():
        return [await place_order(conn, user_id, Decimal(t).quantize(Decimal("0.01"))) for t in totals]


@wrong("4.2", hint="each stored as shop.place_order stores that total")
async def place_orders_float_totals(conn, user_id: int, totals: list[str]) -> list[int]:
    """float() 'to check it is a number': '1.005' is a binary 1.00499…, stored 1.00 (the column makes 1.01 of the
    text)."""
    async with conn.transaction():
        return [await place_order(conn, user_id, float(total)) for total in totals]


@wrong("4.2", hint="a cancellation too")
async def place_orders_except_exception_only(conn, user_id: int, totals: list[str]) -> list[int]:
    """A Transaction object rolled back in `except Exception`: a cancelled call (CancelledError is a BaseException)
    leaves it open with the orders placed so far."""
    batch = conn.transaction()
    await batch.start()
    try:
        ids = [await place_order(conn, user_id, total) for total in totals]
    except Exception:
        await batch.rollback()
        raise
    await batch.commit()
    return ids


@wrong("4.2", hint="orders of the failed batch are still there")
async def place_orders_chunked(conn, user_id: int, totals: list[str]) -> list[int]:
    """The bulk-load habit: chunks of 100, each all or nothing: a failure in the second chunk keeps the first."""
    ids = []
    for start in range(0, len(totals), 100):
        async with conn.transaction():
            ids += [await place_order(conn, user_id, total) for total in totals[start : start + 100]]
    return ids


# --- near-misses of our own: order, Unicode, whitespace, rounding, a swallowed cancellation ---------------


@wrong("4.1", hint="in the order given")
async def import_users_sorted(conn, people: list[tuple[str, str]]) -> list[str]:
    """Returns the skipped emails sorted, 'tidy': out of the order given."""
    skipped = []
    for email, name in people:
        try:
            async with conn.transaction():
                await create_user(conn, email, name)
        except EmailTaken:
            skipped.append(email)
    return sorted(skipped)


@wrong("4.1", hint="as the server's lower() makes them")
async def import_users_strips_emails(conn, people: list[tuple[str, str]]) -> list[str]:
    """Strips each email first ('stray spaces'): ' ada@example.com' is another email for the table, not ada's."""
    skipped = []
    for email, name in people:
        try:
            async with conn.transaction():
                await create_user(conn, email.strip(), name)
        except EmailTaken:
            skipped.append(email)
    return skipped


@wrong("4.1", hint="the skipped emails as given")
async def import_users_reports_each_once(conn, people: list[tuple[str, str]]) -> list[str]:
    """Reports each skipped email once (dict.fromkeys): the same email given twice after it was taken is skipped
    twice, and must be reported twice."""
    skipped = []
    for email, name in people:
        try:
            async with conn.transaction():
                await create_user(conn, email, name)
        except EmailTaken:
            skipped.append(email)
    return list(dict.fromkeys(skipped))


@wrong("4.2", hint="each stored as shop.place_order stores that total")
async def place_orders_whole_cents(conn, user_id: int, totals: list[str]) -> list[int]:
    """Cuts each total to whole cents (ROUND_DOWN, 'never charge more'): '0.125' is stored 0.12, not 0.13."""
    async with conn.transaction():
        return [await place_order(conn, user_id, Decimal(t).quantize(Decimal("0.01"), ROUND_DOWN)) for t in totals]


@wrong("4.2", hint="let the cancellation through")
async def place_orders_swallows_cancellation(conn, user_id: int, totals: list[str]) -> list[int]:
    """All or nothing, but a cancelled batch returns [] as if nothing were asked: the caller's time limit never
    shows."""
    try:
        async with conn.transaction():
            return [await place_order(conn, user_id, total) for total in totals]
    except asyncio.CancelledError:
        return []


@wrong("4.2", hint="each stored as shop.place_order stores that total")
async def place_orders_skips_zero(conn, user_id: int, totals: list[str]) -> list[int]:
    """Skips totals of zero ('nothing to pay'): a free order is an order too, and the column takes 0."""
    async with conn.transaction():
        return [await place_order(conn, user_id, total) for total in totals if Decimal(total) != 0]


# --- near-misses of our own: locks held for the caller, a swallowed cancellation -------------------------


@wrong("4.1", hint="locks more than the rows it inserts")
async def import_users_locks_the_table(conn, people: list[tuple[str, str]]) -> list[str]:
    """Locks the users table first, 'so nobody adds an email while we import': every other sign-up waits for the
    end of the caller's whole transaction."""
    skipped = []
    async with conn.transaction():
        await conn.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
        for email, name in people:
            try:
                async with conn.transaction():
                    await create_user(conn, email, name)
            except EmailTaken:
                skipped.append(email)
    return skipped


@wrong("4.1", hint="locks more than the rows it inserts")
async def import_users_locks_taken_rows(conn, people: list[tuple[str, str]]) -> list[str]:
    """Locks a taken email's row FOR UPDATE before skipping it ('so it cannot go away meanwhile'): inside the
    caller's transaction that user cannot be changed until the caller ends."""
    skipped = []
    for email, name in people:
        if await conn.fetchval("SELECT 1 FROM users WHERE email = lower($1) FOR UPDATE", email):
            skipped.append(email)
            continue
        try:
            async with conn.transaction():
                await create_user(conn, email, name)
        except EmailTaken:
            skipped.append(email)
    return skipped


@wrong("4.1", hint="let the cancellation through")
async def import_users_stops_when_cancelled(conn, people: list[tuple[str, str]]) -> list[str]:
    """A cancellation ends the import 'gracefully', returning what was skipped so far: the caller's time limit
    never shows, and the caller believes the whole batch was handled."""
    skipped = []
    for email, name in people:
        try:
            async with conn.transaction():
                await create_user(conn, email, name)
        except EmailTaken:
            skipped.append(email)
        except asyncio.CancelledError:
            break
    return skipped


@wrong("4.2", hint="locks more than the rows it inserts")
async def place_orders_locks_the_user(conn, user_id: int, totals: list[str]) -> list[int]:
    """Locks the user's row FOR UPDATE 'so two batches for one user never interleave': until the caller's
    transaction ends, every other order for that user waits (its foreign key check needs the row)."""
    async with conn.transaction():
        await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
        return [await place_order(conn, user_id, total) for total in totals]


@wrong("4.2", hint="locks more than the rows it inserts")
async def place_orders_locks_the_users_orders(conn, user_id: int, totals: list[str]) -> list[int]:
    """Locks the user's existing orders FOR UPDATE first ('count them safely'): until the caller's transaction
    ends, none of them can be cancelled or paid."""
    async with conn.transaction():
        await conn.execute("SELECT id FROM orders WHERE user_id = $1 FOR UPDATE", user_id)
        return [await place_order(conn, user_id, total) for total in totals]


# --- right answers, written another way than the model -------------------------------------------


@right("4.1")
async def import_users_savepoint_by_hand(conn, people: list[tuple[str, str]]) -> list[str]:
    """Starts and ends each person's savepoint by hand: commit on success, rollback on EmailTaken."""
    skipped = []
    for email, name in people:
        savepoint = conn.transaction()
        await savepoint.start()
        try:
            await create_user(conn, email, name)
        except EmailTaken:
            await savepoint.rollback()
            skipped.append(email)
        except BaseException:
            await savepoint.rollback()
            raise
        else:
            await savepoint.commit()
    return skipped


@right("4.1")
async def import_users_one_helper(conn, people: list[tuple[str, str]]) -> list[str]:
    """A helper that tries one insert in its own savepoint and says whether it worked."""

    async def added(email: str, name: str) -> bool:
        try:
            async with conn.transaction():
                await create_user(conn, email, name)
        except EmailTaken:
            return False
        return True

    return [email for email, name in people if not await added(email, name)]


@right("4.1")
async def import_users_on_conflict(conn, people: list[tuple[str, str]]) -> list[str]:
    """Lets the server skip: INSERT ... ON CONFLICT DO NOTHING returns no id for a taken email."""
    skipped = []
    for email, name in people:
        new_id = await conn.fetchval(
            "INSERT INTO users (email, name) VALUES (lower($1), $2) ON CONFLICT DO NOTHING RETURNING id", email, name
        )
        if new_id is None:
            skipped.append(email)
    return skipped


@right("4.2")
async def place_orders_transaction_by_hand(conn, user_id: int, totals: list[str]) -> list[int]:
    """start(), then commit() or rollback() by hand."""
    batch = conn.transaction()
    await batch.start()
    try:
        ids = []
        for total in totals:
            ids.append(await place_order(conn, user_id, total))
    except BaseException:
        await batch.rollback()
        raise
    await batch.commit()
    return ids


@right("4.2")
async def place_orders_one_statement(conn, user_id: int, totals: list[str]) -> list[int]:
    """One INSERT for the whole batch, in a savepoint so that its failure does not abort the caller's work."""
    savepoint = conn.transaction()
    await savepoint.start()
    try:
        rows = await conn.fetch(
            """
            INSERT INTO orders (user_id, total)
            SELECT $1, total FROM unnest($2::numeric[]) WITH ORDINALITY AS batch(total, position)
            ORDER BY position
            RETURNING id
            """,
            user_id,
            totals,
        )
    except BaseException:
        await savepoint.rollback()
        raise
    await savepoint.commit()
    return sorted(row["id"] for row in rows)


@wrong("4.2", hint="the caller's transaction no longer works")
async def place_orders_in_one_statement(conn, user_id: int, totals: list[str]) -> list[int]:
    """One INSERT for the whole batch, as if one statement were all or nothing for the caller too."""
    rows = await conn.fetch(
        """
        INSERT INTO orders (user_id, total)
        SELECT $1, total FROM unnest($2::numeric[]) WITH ORDINALITY AS batch(total, position)
        ORDER BY position
        RETURNING id
        """,
        user_id,
        totals,
    )
    return sorted(row["id"] for row in rows)
