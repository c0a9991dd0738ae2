# Solutions for notebooks/00_start_here.ipynb. Each section replaces the exercise cell with the same number.

# %% Exercise 0.1
async def count_users(conn) -> int:
    return await conn.fetchval("SELECT count(*) FROM users")
