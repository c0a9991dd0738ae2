# Solutions for notebooks/01_real_postgres.ipynb. Each section replaces the exercise cell with the same number.

# %% Exercise 1.1
def asyncpg_dsn(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    return scheme.split("+", 1)[0] + separator + rest
