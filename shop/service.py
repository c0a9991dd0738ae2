"""Application code that takes its own connections from a pool, like a web handler."""

from __future__ import annotations

import asyncpg

from . import repository


class UserService:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def count_users(self) -> int:
        async with self.pool.acquire() as conn:
            return await conn.fetchval("SELECT count(*) FROM users")

    async def sign_up(self, email: str, name: str) -> int:
        """Create a user in a transaction of its own: committed when this returns."""
        async with self.pool.acquire() as conn, conn.transaction():
            return await repository.create_user(conn, email, name)

    async def lookup(self, email: str) -> asyncpg.Record | None:
        async with self.pool.acquire() as conn:
            return await repository.find_user_by_email(conn, email)
