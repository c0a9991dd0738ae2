# Solutions for notebooks/02_connection_pools.ipynb. Each section replaces the exercise cell with the same number.

# %% Exercise 2.1
async def find_email(pool, user_id):
    async with pool.acquire() as conn:  # released on return and on any exception
        return await conn.fetchval("SELECT email FROM users WHERE id = $1", user_id)


# %% Exercise 2.2
import asyncpg  # noqa: E402 - already imported in the notebook; here for a self-contained solution


async def create_guarded_pool(dsn):
    # server_settings become the connection's defaults, so RESET ALL on release keeps them.
    # (setup= with "SET statement_timeout = '500ms'" also works, at one extra query per acquire.)
    return await asyncpg.create_pool(dsn, min_size=1, max_size=2, server_settings={"statement_timeout": "500ms"})
