# Solutions for notebooks/05_type_codecs.ipynb. Each section replaces the exercise cell with the same number.

# %% Exercise 5.1
import coursedb


async def init_shop_connection(conn) -> None:
    await coursedb.init_connection(conn)  # json and jsonb
    await register_order_status(conn)  # noqa: F821 - defined earlier in the notebook
