"""shop: the small async application the course tests.

It stands for "your code": plain functions over asyncpg connections, plus a service
that takes its own connections from a pool, the way web handlers do.
"""

from .repository import (
    EmailTaken,
    create_user,
    find_user_by_email,
    order_total,
    place_order,
    record_event,
    register_with_first_order,
)
from .service import UserService

__all__ = [
    "EmailTaken",
    "UserService",
    "create_user",
    "find_user_by_email",
    "order_total",
    "place_order",
    "record_event",
    "register_with_first_order",
]
