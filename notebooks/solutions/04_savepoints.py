# Solutions for notebooks/04_savepoints.ipynb. Each section replaces the exercise cell with the same number.

# %% Exercise 4.1
from shop import EmailTaken, create_user


async def import_users(conn, people: list[tuple[str, str]]) -> list[str]:
    skipped = []
    for email, name in people:
        try:
            async with conn.transaction():  # a savepoint: a failure undoes this person only
                await create_user(conn, email, name)
        except EmailTaken:
            skipped.append(email)
    return skipped
