"""Answers to notebook 01 (exercises 1.1 and 1.2): wrong ones its checkers must reject, right ones they accept."""

import re

import asyncpg

from coursebook.answers import wrong


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
