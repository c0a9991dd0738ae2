"""Run coroutines from sync code, even when the caller already runs an event loop.

A Jupyter kernel runs an event loop in its main thread, so ``asyncio.run()`` fails there
("cannot be called from a running event loop"). The same trap catches the classic
``command.upgrade(alembic_cfg, "head")`` inside an async fixture. The async-safe way is to
run the coroutine on a fresh loop in a worker thread and wait for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion and return its result, whatever loop is running here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="coursedb") as pool:
        return pool.submit(asyncio.run, coro).result()
