"""The council's public signing keys as a partner holds them: cached, refetched on a new kid.

As docs/keys-and-envelopes.md asks of every partner: cache the JWKS, and fetch it again when
an envelope is signed with a kid we do not have (the council rotated). At most
`max_refetches` refetches happen in any `window_s` seconds: a genuine rotation is picked up at
once (even right after start-up), while a stream of envelopes naming bogus kids cannot turn
the simulator into a load generator against the council.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from gateway.errors import GatewayError

JwksProvider = Callable[[], Awaitable[Mapping[str, Any]]]
JwksSource = str | Mapping[str, Any] | JwksProvider
MAX_JWKS_BYTES = 256 * 1024


class CouncilJwksError(GatewayError):
    """The council's JWKS cannot be had now (unreachable, not JSON, not a key set)."""

    code = "council_jwks_unavailable"


def provider_for(
    source: JwksSource, session: Callable[[], aiohttp.ClientSession], timeout_s: float = 5.0
) -> JwksProvider:
    """Turn a URL, a fixed JWKS or an async function into one async function returning a JWKS."""
    if isinstance(source, str):
        url = source

        async def fetch() -> Mapping[str, Any]:
            return await fetch_jwks(session(), url, timeout_s)

        return fetch
    if isinstance(source, Mapping):
        fixed = source

        async def constant() -> Mapping[str, Any]:
            return fixed

        return constant
    return source


async def fetch_jwks(session: aiohttp.ClientSession, url: str, timeout_s: float) -> dict[str, Any]:
    """GET a JWKS document; any failure is a CouncilJwksError naming what went wrong."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            if response.status != 200:
                raise CouncilJwksError(f"the council JWKS answered HTTP {response.status}")
            raw = await response.content.read(MAX_JWKS_BYTES + 1)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise CouncilJwksError(f"the council JWKS is unreachable ({type(exc).__name__})") from None
    if len(raw) > MAX_JWKS_BYTES:
        raise CouncilJwksError("the council JWKS is over the size limit")
    try:
        document = json.loads(raw)
    except ValueError:
        raise CouncilJwksError("the council JWKS is not JSON") from None
    return check_jwks(document)


def check_jwks(document: Any) -> dict[str, Any]:
    """A JWKS must be an object with a list of keys."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise CouncilJwksError("the council JWKS is not a key set")
    return dict(document)


class CouncilJwks:
    """The cached council key set, with a rate-limited refetch for unknown kids."""

    def __init__(
        self,
        provider: JwksProvider,
        *,
        max_refetches: int = 5,
        window_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._provider = provider
        self._max_refetches = max_refetches
        self._window_s = window_s
        self._monotonic = monotonic
        self._cached: dict[str, Any] | None = None
        self._refetched_at: deque[float] = deque()
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def current(self) -> Mapping[str, Any]:
        """The cached key set, fetched on first use."""
        if self._cached is not None:
            return self._cached
        async with self._lock:
            if self._cached is None:
                await self._fetch()
            assert self._cached is not None
            return self._cached

    async def refetch(self, seen: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """A newer key set than `seen`, fetching once if allowed; None when nothing new."""
        async with self._lock:
            if self._cached is not None and self._cached is not seen:
                return self._cached  # someone refetched while we waited
            moment = self._monotonic()
            while self._refetched_at and moment - self._refetched_at[0] >= self._window_s:
                self._refetched_at.popleft()
            if len(self._refetched_at) >= self._max_refetches:
                return None
            self._refetched_at.append(moment)  # failed attempts count against the limit too
            await self._fetch()
            return self._cached

    async def _fetch(self) -> None:
        try:
            document = check_jwks(await self._provider())
        except CouncilJwksError:
            raise
        except Exception as exc:  # a caller's provider may fail in any way; say how, not why
            raise CouncilJwksError(
                f"the council JWKS provider failed ({type(exc).__name__})"
            ) from exc
        self.fetches += 1
        self._cached = document
