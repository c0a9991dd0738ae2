# Solutions for notebooks/07_putting_it_together.ipynb. Each section replaces the exercise cell with the same number.

# %% Exercise 7.1
async def cancel_order(conn, order_id: int) -> bool:
    # One statement: the row is checked and changed together, so two concurrent cancels
    # can't both see 'pending' and both return True (the second waits, then matches nothing).
    cancelled = await conn.fetchval(
        "UPDATE orders SET status = 'cancelled' WHERE id = $1 AND status IN ('pending', 'paid') RETURNING id",
        order_id,
    )
    return cancelled is not None
