"""The one exception type users see from coursedb."""

from __future__ import annotations


class CourseDBError(RuntimeError):
    """A problem the user can fix, described in one or two plain sentences.

    The message is the whole story: callers print ``str(err)`` and nothing else.
    """


# SQLSTATEs of asyncpg's prepared statements meeting other clients' (or missing their own) in a
# server session a transaction pooler lent it: duplicate_prepared_statement, invalid_sql_statement_name.
_POOLED_SQLSTATES = ("42P05", "26000")
POOLED = (
    "the server is reached through a connection pooler in transaction or statement mode (such as PgBouncer's "
    "pool_mode = transaction), which coursedb cannot use; point COURSEDB_URL at the server's own port, or at a "
    "pool in session mode (pool_mode = session)"
)


def reason(exc: BaseException) -> str:
    """What went wrong, never empty: a timeout's own text is blank; asyncpg's page about poolers is one clause."""
    if getattr(exc, "sqlstate", None) in _POOLED_SQLSTATES and "__asyncpg_" in str(exc):
        return POOLED
    text = str(exc).strip()
    if text:
        return text
    if isinstance(exc, TimeoutError) or type(exc).__name__ == "TimeoutError":
        return "the server did not answer in time (frozen or overloaded, or what listens there is not PostgreSQL)"
    return type(exc).__name__
