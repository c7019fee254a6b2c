"""What every gateway-admin command that touches the store needs: settings, store, actor, clock."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, TypeVar

import typer
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from gateway import audit
from gateway.cli.common import EXIT_USAGE, default_actor, fail
from gateway.clock import utc_now
from gateway.errors import ConflictError, DatabaseUnavailableError, GatewayError
from gateway.keys import CouncilKeyring
from gateway.protection import Protection
from gateway.service import Gateway
from gateway.settings import Settings, load_settings
from gateway.store import migrate
from gateway.store.database import Store

T = TypeVar("T")
Clock = Callable[[], datetime]
MAX_REASON = 200  # audit details hold names and codes; a reason is one short line

JsonFlag = Annotated[bool, typer.Option("--json", help="One JSON document for scripts.")]
ActorOption = Annotated[
    str | None,
    typer.Option("--actor", help="Who is making the change, for the audit log (default: OS user)."),
]
ReasonOption = Annotated[
    str, typer.Option("--reason", help="Why, in one short line (recorded in the audit log).")
]


class SchemaNotCurrentError(GatewayError):
    """The database is not at the schema this code expects."""

    code = "schema_not_current"


@dataclass(frozen=True)
class AdminContext:
    """One command's view of the gateway: settings, an open store, who acts, and the time."""

    settings: Settings
    store: Store
    actor: audit.Actor
    now: datetime

    @property
    def today(self) -> date:
        """Today's date in UTC."""
        return self.now.date()

    def keyring(self) -> CouncilKeyring:
        """The council's signing keys under GATEWAY_KEYS_DIR."""
        return CouncilKeyring(self.settings.keys_dir)

    def protection(self) -> Protection:
        """The gateway's blind-index and at-rest keys under GATEWAY_KEYS_DIR."""
        return Protection.from_dir(self.settings.keys_dir)


def admin_actor(name: str | None) -> audit.Actor:
    """The audited actor: --actor, else the OS user."""
    chosen = (name or "").strip() or default_actor()
    if len(chosen) > MAX_REASON:
        raise usage(f"--actor is longer than {MAX_REASON} characters")
    return audit.Actor(audit.ActorKind.ADMIN, chosen)


def check_reason(reason: str) -> str:
    """A reason is required, one line, and short enough for the audit log."""
    text = reason.strip()
    if not text:
        raise usage("--reason must not be empty")
    if len(text) > MAX_REASON or "\n" in text:
        raise usage(f"--reason must be one line of at most {MAX_REASON} characters")
    return text


def usage(message: str) -> typer.Exit:
    """A usage mistake: one line on stderr, exit code 2."""
    return fail(message, EXIT_USAGE)


def parse_date(text: str, option: str) -> date:
    """A YYYY-MM-DD date from the command line, or a usage error naming the option."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise usage(f"{option}: expected a date like 2027-03-31") from None


def parse_duration(text: str, option: str) -> timedelta:
    """An ISO 8601 duration (P30D, PT12H) from the command line, or a usage error."""
    try:
        value = TypeAdapter(timedelta).validate_python(text)
    except ValidationError:
        raise usage(f"{option}: expected an ISO 8601 duration like P30D") from None
    if value < timedelta(0):
        raise usage(f"{option}: must not be negative")
    return value


async def require_current_schema(store: Store) -> None:
    """Refuse to work on a database that is not at the current schema."""
    try:
        current = await migrate.current_revision(store.engine)
    except (SQLAlchemyError, OSError) as exc:
        raise DatabaseUnavailableError(
            f"cannot reach the database ({type(exc).__name__}); check GATEWAY_DATABASE_URL"
        ) from None
    if current != migrate.head_revision():
        raise SchemaNotCurrentError(
            "the database schema is not current: run `gateway-admin db upgrade` first"
        )


def run_async(
    work: Callable[[AdminContext], Awaitable[T]],
    *,
    actor: str | None = None,
    clock: Clock = utc_now,
    settings: Settings | None = None,
) -> T:
    """Open the store at the current schema, run one piece of work, close the store."""
    chosen = settings or load_settings()
    who = admin_actor(actor)

    async def main() -> T:
        options = dataclasses.replace(chosen.database_options, pool_size=2)
        store = await Store.open(chosen.resolved_database_url, options)
        try:
            await require_current_schema(store)
            return await work(AdminContext(chosen, store, who, clock()))
        except IntegrityError:
            raise ConflictError(
                "the database changed under this command (another change at the same time?); "
                "run it again",
                code="concurrent_change",
            ) from None
        except SQLAlchemyError as exc:
            raise DatabaseUnavailableError(
                f"the database refused the work ({type(exc).__name__})"
            ) from None
        finally:
            await store.close()

    return asyncio.run(main())


def with_gateway(work: Callable[[Gateway], Awaitable[T]]) -> T:
    """Open the whole service (for use cases that seal or decide), run `work`, close it."""

    async def main() -> T:
        gateway = await Gateway.open(load_settings())
        try:
            return await work(gateway)
        finally:
            await gateway.close()

    return asyncio.run(main())
