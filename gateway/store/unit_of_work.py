"""The connection a use case's unit of work is handed, by a name that is not SQLAlchemy's.

Use cases only pass it on to repository functions; naming it here keeps SQL out of them.
"""

from __future__ import annotations

from typing import TypeAlias

from sqlalchemy.ext.asyncio import AsyncConnection

Connection: TypeAlias = AsyncConnection
