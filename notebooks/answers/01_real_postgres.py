"""Answers to notebook 01 (exercises 1.1 and 1.2): wrong ones its checkers must reject, right ones they accept."""

import re

import asyncpg

from coursebook.answers import right, wrong
from coursebook.mutants import equivalent


@wrong("1.1", hint="not only psycopg2 and asyncpg")
def asyncpg_dsn_two_drivers(url: str) -> str:
    """Strips the two drivers the learner knows of (the issue's example)."""
    return url.replace("+psycopg2", "").replace("+asyncpg", "")


@wrong("1.1", hint="the scheme is gone")
def asyncpg_dsn_article_recipe(url: str) -> str:
    """The article's recipe: removes the whole scheme."""
    return url.replace("postgresql+psycopg2://", "")


@wrong("1.1", hint="part of the password")
def asyncpg_dsn_regex(url: str) -> str:
    """Removes every '+word', the password's too."""
    return re.sub(r"\+\w+", "", url)


@wrong("1.1", hint="part of the password")
def asyncpg_dsn_split_on_plus(url: str) -> str:
    """Splits the whole URL on '+'."""
    return url.split("+")[0] + "://" + url.split("://")[1]


@wrong("1.1", hint="returned it unchanged")
def asyncpg_dsn_do_nothing(url: str) -> str:
    """Returns the URL as it came."""
    return url


@wrong("1.1", hint="the query string too")
def asyncpg_dsn_hard_coded(url: str) -> str:
    """Returns the URL of the first example."""
    return "postgresql://test:secret@localhost:55432/shop"


@wrong("1.2", hint="convert it before the query")
async def email_or_none_as_in_the_demo(conn, user_id: str) -> str | None:
    """The notebook's get_user_email: passes the str along."""
    row = await conn.fetchrow("SELECT email FROM users WHERE id = $1", user_id)
    return row["email"] if row else None


@wrong("1.2", hint="instead of raising ValueError")
async def email_or_none_bare_int(conn, user_id: str) -> str | None:
    """Converts, but not every path is a number."""
    return await conn.fetchval("SELECT email FROM users WHERE id = $1", int(user_id))


@wrong("1.2", hint="outside the range of the integer id column")
async def email_or_none_isdigit(conn, user_id: str) -> str | None:
    """Checks the digits, not the size."""
    if not user_id.isdigit():
        return None
    return await conn.fetchval("SELECT email FROM users WHERE id = $1", int(user_id))


@wrong("1.2", hint="other errors must reach the caller")
async def email_or_none_swallows_everything(conn, user_id: str) -> str | None:
    """Catches every exception."""
    try:
        return await conn.fetchval("SELECT email FROM users WHERE id = $1", int(user_id))
    except Exception:
        return None


@wrong("1.2", hint="expected 'ada@example.com'")
async def email_or_none_hard_coded(conn, user_id: str) -> str | None:
    """Always None: right for every bad id, wrong for the good one."""
    return None


@wrong("1.2", hint="other errors must reach the caller")
async def email_or_none_catches_interface_errors(conn, user_id: str) -> str | None:
    """Catches asyncpg.InterfaceError, which a closed connection raises too."""
    try:
        return await conn.fetchval("SELECT email FROM users WHERE id = $1", int(user_id))
    except (ValueError, asyncpg.InterfaceError):
        return None


# --- friendly data: right only for the URLs and ids the author thought of ---------------------------


@wrong("1.1", hint="only the first '://' ends the scheme")
def asyncpg_dsn_split_in_two(url: str) -> str:
    """Splits at '://' into exactly two parts: a query that holds another '://' breaks it."""
    scheme, rest = url.split("://")
    return scheme.split("+")[0] + "://" + rest


@wrong("1.1", hint="the same text after '://' stays")
def asyncpg_dsn_replace_the_driver(url: str) -> str:
    """Finds the driver name, then removes '+driver' wherever it occurs."""
    scheme = url.split("://")[0]
    if "+" not in scheme:
        return url
    return url.replace("+" + scheme.split("+")[1], "")


@wrong("1.1", hint="any driver after '+'")
def asyncpg_dsn_word_drivers(url: str) -> str:
    """A regular expression for the driver: letters only, so pg8000 or psycopg2 with digits slip through."""
    return re.sub(r"^(postgres(?:ql)?)\+[a-z]+://", r"\1://", url)


@wrong("1.2", hint="a user with the id -7 exists")
async def email_or_none_digits_only(conn, user_id: str) -> str | None:
    """Digits only, and a length limit: negative ids are forgotten."""
    if not user_id.isdigit() or len(user_id) > 10 or int(user_id) >= 2**31:
        return None
    return await conn.fetchval("SELECT email FROM users WHERE id = $1", int(user_id))


@wrong("1.2", hint="a user with the id -2147483648 exists")
async def email_or_none_abs_below_limit(conn, user_id: str) -> str | None:
    """Checks the size with abs(): the lowest integer is one further from zero than the highest."""
    try:
        number = int(user_id)
    except ValueError:
        return None
    if abs(number) >= 2**31:
        return None
    return await conn.fetchval("SELECT email FROM users WHERE id = $1", number)


@wrong("1.2", hint="outside the range of the integer id column")
async def email_or_none_off_by_one(conn, user_id: str) -> str | None:
    """Compares with <= 2**31: one past the highest id is let through."""
    try:
        number = int(user_id)
    except ValueError:
        return None
    if not -(2**31) <= number <= 2**31:
        return None
    return await conn.fetchval("SELECT email FROM users WHERE id = $1", number)


@wrong("1.2", hint="expected None")
async def email_or_none_via_float(conn, user_id: str) -> str | None:
    """Goes through float(), so '4.2' and '1e3' become ids."""
    try:
        number = int(float(user_id))
    except ValueError:
        return None
    if not -(2**31) <= number < 2**31:
        return None
    return await conn.fetchval("SELECT email FROM users WHERE id = $1", number)


# --- written blind by an outside learner, and accepted until the checker broke their data ----------


@wrong("1.1", hint="a URL without a driver stays exactly as it is")
def asyncpg_dsn_regex_before_the_separator(url: str) -> str:
    """Removes the first '+word' that stands right before a '://', wherever it is: also in a driverless URL's query."""
    return re.sub(r"\+[^:/]+(?=://)", "", url, count=1)


@wrong("1.1", hint="not even a space at its end")
def asyncpg_dsn_strips_the_url(url: str) -> str:
    """Tidies the URL with strip() first: a query or password that ends in a space loses it."""
    scheme, separator, rest = url.strip().partition("://")
    return scheme.split("+")[0] + separator + rest


@wrong("1.2", hint="statement_timeout is '1s' after the call")
async def email_or_none_quick_or_nothing(conn, user_id: str) -> str | None:
    """SET LOCAL statement_timeout = '1s' before the query ('a lookup must be quick'): the setting outlives the call,
    and the caller's next statements in its transaction are cancelled after 1 s."""
    try:
        number = int(user_id)
    except ValueError:
        return None
    if not -(2**31) <= number < 2**31:
        return None
    await conn.execute("SET LOCAL statement_timeout = '1s'")
    return await conn.fetchval("SELECT email FROM users WHERE id = $1", number)


# --- right answers, written another way than the model -------------------------------------------


@right("1.1")
def asyncpg_dsn_with_a_regex(url: str) -> str:
    """One anchored regular expression: a '+' and anything up to the first '://'."""
    return re.sub(r"^([^:/+]+)\+[^:/]*://", r"\1://", url, count=1)


@right("1.1")
def asyncpg_dsn_by_index(url: str) -> str:
    """Finds the first '://' and cuts the scheme at its '+', by index."""
    end = url.index("://")
    plus = url.find("+", 0, end)
    return url if plus == -1 else url[:plus] + url[end:]


@right("1.1")
def asyncpg_dsn_split_once(url: str) -> str:
    """Splits once at '://', keeps what is before the '+' of the scheme."""
    scheme, rest = url.split("://", 1)
    return scheme.split("+")[0] + "://" + rest


@right("1.2")
async def email_or_none_lets_asyncpg_check(conn, user_id: str) -> str | None:
    """Converts, and lets asyncpg say when the number does not fit the column."""
    try:
        return await conn.fetchval("SELECT email FROM users WHERE id = $1", int(user_id))
    except (ValueError, asyncpg.DataError):
        return None


@right("1.2")
async def email_or_none_compares_text(conn, user_id: str) -> str | None:
    """Compares the id as text on the server: no conversion in Python at all."""
    return await conn.fetchval("SELECT email FROM users WHERE id::text = $1", user_id)


@right("1.2")
async def email_or_none_with_a_pattern(conn, user_id: str) -> str | None:
    """A pattern for whole numbers, then the bounds spelled out."""
    if not re.fullmatch(r"-?[0-9]+", user_id):
        return None
    number = int(user_id)
    if number < -2147483648 or number > 2147483647:
        return None
    return await conn.fetchval("SELECT email FROM users WHERE id = $1", number)


# --- written blind by outside engineers (second round and its holdout), and new near-misses ----------


@wrong("1.1", hint="percent-escapes stay as they are")
def asyncpg_dsn_unquotes_first(url: str) -> str:
    """Percent-decodes the URL first ('SQLAlchemy URLs are escaped'): 'p%40ss' becomes 'p@ss', which moves the host."""
    from urllib.parse import unquote

    scheme, separator, rest = unquote(url).partition("://")
    return scheme.split("+")[0] + separator + rest


@wrong("1.1", hint="the case of its scheme too")
def asyncpg_dsn_lowercases_the_scheme(url: str) -> str:
    """Lower-cases the scheme ('schemes are case-insensitive'): 'PostgreSQL://…' without a driver comes back changed."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    return scheme.lower().split("+")[0] + separator + rest


@wrong("1.1", hint="the case of its scheme too")
def asyncpg_dsn_through_urlsplit(url: str) -> str:
    """urllib's urlsplit/urlunsplit: it lower-cases the scheme and drops an empty '?' or '#' at the end."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme.split("+")[0]))


@wrong("1.1", hint="whatever the case of the scheme")
def asyncpg_dsn_postgres_schemes_only(url: str) -> str:
    """Rewrites only schemes that start with 'postgres' as written: 'POSTGRESQL+ASYNCPG://' keeps its driver."""
    scheme, separator, rest = url.partition("://")
    if not scheme.startswith("postgres"):
        return url
    return scheme.split("+")[0] + separator + rest


@wrong("1.2", hint="the caller's transaction was aborted")
async def email_or_none_lets_the_server_cast(conn, user_id: str) -> str | None:
    """Lets the server cast the digits and turns its 'out of range' error into None: the error has already aborted the
    caller's transaction."""
    if not re.fullmatch(r"-?[0-9]+", user_id):
        return None
    try:
        return await conn.fetchval("SELECT email FROM users WHERE id = $1::text::int", user_id)
    except asyncpg.NumericValueOutOfRangeError:
        return None


@wrong("1.2", hint="the caller's transaction was aborted")
async def email_or_none_catches_what_the_server_says(conn, user_id: str) -> str | None:
    """Lets the server cast any text ($1::text::int) and turns any server error into None: inside the caller's
    transaction the failed query aborts it."""
    try:
        return await conn.fetchval("SELECT email FROM users WHERE id = $1::text::int", user_id)
    except asyncpg.PostgresError:
        return None


@wrong("1.2", hint="return None instead of raising ValueError")
async def email_or_none_isdigit_guard(conn, user_id: str) -> str | None:
    """Guards int() with str.isdigit(): '²' is a digit to isdigit() but not to int(), which raises."""
    digits = user_id[1:] if user_id.startswith("-") else user_id
    if not digits.isdigit():
        return None
    number = int(user_id)
    if not -(2**31) <= number < 2**31:
        return None
    return await conn.fetchval("SELECT email FROM users WHERE id = $1", number)


@wrong("1.2", hint="return None instead of raising ValueError")
async def email_or_none_isnumeric_guard(conn, user_id: str) -> str | None:
    """Guards int() with str.isnumeric(): '½' and '①' are numeric to it, and int() raises."""
    if not user_id.removeprefix("-").isnumeric():
        return None
    number = int(user_id)
    if not -(2**31) <= number < 2**31:
        return None
    return await conn.fetchval("SELECT email FROM users WHERE id = $1", number)


@wrong("1.2", hint="a slow answer is no missing user")
async def email_or_none_timeout_means_nobody(conn, user_id: str) -> str | None:
    """'A lookup must never hang a request': a one-second time limit whose TimeoutError becomes None, so a user who
    exists is reported missing whenever the query waits."""
    try:
        number = int(user_id)
    except ValueError:
        return None
    if not -(2**31) <= number < 2**31:
        return None
    try:
        return await conn.fetchval("SELECT email FROM users WHERE id = $1", number, timeout=1)
    except TimeoutError:
        return None


# --- mutants of the model answer that behave exactly like it ------------------------------------------

equivalent(
    "1.1",
    "off-by-one: 1 -> 2 in scheme.split('+', 1)[0] + separator + rest",
    reason="splitting at the first two '+' instead of the first one leaves the part before the first '+' as it was",
)
equivalent(
    "1.2",
    "except-widened: except ValueError -> except Exception",
    reason="int() of a str raises ValueError and nothing else, so catching Exception around it catches the same",
)


@wrong("1.2", hint="let the server's error reach the caller")
async def email_or_none_postgres_error_is_none(conn, user_id: str) -> str | None:
    """Checks the id in Python, then turns any server error into None (written blind by an outside learner): a query
    cancelled by a statement_timeout or a lock_timeout, or a missing table, reads as 'no such user'."""
    try:
        number = int(user_id)
    except ValueError:
        return None
    if not -(2**31) <= number < 2**31:
        return None
    try:
        return await conn.fetchval("SELECT email FROM users WHERE id = $1", number)
    except asyncpg.PostgresError:
        return None


@wrong("1.2", hint="let the server's error reach the caller")
async def email_or_none_busy_means_none(conn, user_id: str) -> str | None:
    """Treats a lookup that timed out as 'not found' ('the user can retry'): a busy table hides a user who exists."""
    if not re.fullmatch(r"-?[0-9]{1,10}", user_id) or not -(2**31) <= int(user_id) < 2**31:
        return None
    try:
        return await conn.fetchval("SELECT email FROM users WHERE id = $1", int(user_id))
    except (asyncpg.QueryCanceledError, asyncpg.LockNotAvailableError):
        return None
