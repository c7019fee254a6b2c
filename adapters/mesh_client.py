"""An async client for NHS England's MESH API on aiohttp: one pooled session per gateway."""

from __future__ import annotations

import datetime as dt
import io
import json
import platform
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlencode, urljoin

import aiohttp

from adapters.mesh_auth import auth_token
from adapters.mesh_chunking import UploadPlan
from adapters.mesh_config import MeshConfig, build_ssl_context
from adapters.mesh_errors import MeshError, MeshProtocolError, MeshUnavailableError, classify
from adapters.mesh_messages import (
    InboxMessage,
    Tracking,
    chunk_count,
    mex_headers,
    tracking_from_json,
)

MESH_V2 = "application/vnd.mesh.v2+json"
CLIENT_NAME = "gatehouse"
CLIENT_VERSION = "0.1.0"
# aiohttp warns that raw bytes above 1 MiB may block the loop; it streams a BytesIO instead.
_STREAM_ABOVE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SentMessage:
    """What MESH gave back for an upload: its message id, and how the body crossed."""

    message_id: str
    chunks: int
    compressed: bool


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    headers: Mapping[str, str]  # case-insensitive (aiohttp's CIMultiDictProxy)
    body: bytes

    def json(self) -> dict[str, Any]:
        try:
            parsed = json.loads(self.body) if self.body else {}
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise MeshProtocolError("MESH replied with something other than a JSON object")
        return parsed


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _nonce() -> str:
    return str(uuid.uuid4())


class MeshClient:
    """MESH API calls for one mailbox: handshake, send (chunked), track, inbox, download, ack."""

    def __init__(
        self,
        config: MeshConfig,
        *,
        clock: Callable[[], dt.datetime] = _utcnow,
        nonce: Callable[[], str] = _nonce,
    ) -> None:
        self.config = config
        self._clock = clock
        self._nonce = nonce
        self._session: aiohttp.ClientSession | None = None
        self._ssl = build_ssl_context(config)  # fails now, at start-up, on unusable TLS files
        self._base = config.base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"MeshClient(mailbox={self.config.mailbox!r}, base_url={self._base!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _session_or_new(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.config.max_connections, ssl=self._ssl)
            timeout = aiohttp.ClientTimeout(
                total=None, connect=self.config.connect_timeout, sock_read=self.config.read_timeout
            )
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self._session

    async def close(self) -> None:
        """Release the pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _mailbox_url(self, base_url: str | None) -> str:
        return (
            f"{(base_url or self._base).rstrip('/')}/messageexchange/{quote(self.config.mailbox)}"
        )

    def _auth(self) -> str:
        return auth_token(
            mailbox=self.config.mailbox,
            password=self.config.password.get_secret_value(),
            shared_key=self.config.shared_key.get_secret_value(),
            nonce=self._nonce(),
            nonce_count=0,
            now=self._clock(),
        )

    async def _request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        ok: tuple[int, ...] = (200, 202),
        accept: str = MESH_V2,
    ) -> _Reply:
        sent = {"Authorization": self._auth(), "Accept": accept, **(headers or {})}
        body: bytes | io.BytesIO | None = data
        if data is not None and len(data) > _STREAM_ABOVE:
            body = io.BytesIO(data)
        try:
            async with self._session_or_new().request(
                method, url, headers=sent, data=body, allow_redirects=False
            ) as reply:
                content = await reply.read()
                status, reply_headers = reply.status, reply.headers
        except TimeoutError as exc:
            raise MeshUnavailableError("MESH did not answer in time", code="mesh_timeout") from exc
        except aiohttp.ClientSSLError as exc:
            raise MeshUnavailableError(
                f"TLS with MESH failed: {type(exc).__name__}", code="mesh_tls_failed"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise MeshUnavailableError(f"MESH unreachable: {type(exc).__name__}") from exc
        if status in ok:
            return _Reply(status, reply_headers, content)
        try:
            parsed: Any = json.loads(content) if content else None
        except ValueError:
            parsed = None
        raise classify(status, parsed, retry_after=reply_headers.get("Retry-After"))

    async def handshake(self, *, base_url: str | None = None) -> None:
        """Validate our mailbox and credentials, telling MESH which client we are (daily)."""
        headers = {
            "mex-ClientVersion": f"{CLIENT_NAME}=={CLIENT_VERSION}",
            "mex-OSName": platform.system() or "unknown",
            "mex-OSVersion": platform.release() or "unknown",
            "mex-OSArchitecture": platform.machine() or "unknown",
            "mex-JavaVersion": "N/A",
        }
        await self._request("POST", self._mailbox_url(base_url), headers=headers)

    async def send(
        self,
        plan: UploadPlan,
        *,
        recipient: str,
        workflow_id: str,
        local_id: str,
        subject: str | None = None,
        filename: str | None = None,
        content_type: str = "application/octet-stream",
        encrypted: bool = False,
        base_url: str | None = None,
    ) -> SentMessage:
        """Upload a planned message: chunk 1 creates it, the rest follow (never retried here)."""
        message_id = await self.create(
            plan,
            recipient=recipient,
            workflow_id=workflow_id,
            local_id=local_id,
            subject=subject,
            filename=filename,
            content_type=content_type,
            encrypted=encrypted,
            base_url=base_url,
        )
        await self.upload_chunks(message_id, plan, first=2, base_url=base_url)
        return SentMessage(message_id=message_id, chunks=plan.total, compressed=plan.compressed)

    async def create(
        self,
        plan: UploadPlan,
        *,
        recipient: str,
        workflow_id: str,
        local_id: str,
        subject: str | None = None,
        filename: str | None = None,
        content_type: str = "application/octet-stream",
        encrypted: bool = False,
        base_url: str | None = None,
    ) -> str:
        """POST chunk 1 to /outbox: MESH creates the message (accepted, or uploading if chunked)."""
        headers = {
            "Content-Type": content_type if plan.total == 1 else "application/octet-stream",
            "mex-To": recipient,
            "mex-WorkflowID": workflow_id,
            "mex-LocalID": local_id,
            "mex-Chunk-Range": plan.chunk_range(1),
            "mex-Content-Checksum": plan.checksum,
            "mex-Content-Type": content_type,
        }
        if subject:
            headers["mex-Subject"] = subject
        if filename:
            headers["mex-FileName"] = filename
        if encrypted:
            headers["mex-Content-Encrypted"] = "Y"
        if plan.compressed:
            headers["Content-Encoding"] = "gzip"
        url = f"{self._mailbox_url(base_url)}/outbox"
        reply = await self._request("POST", url, headers=headers, data=plan.chunks[0])
        body = reply.json()
        message_id = str(body.get("message_id") or body.get("messageID") or "")
        if not message_id:
            raise MeshProtocolError("MESH accepted the upload but returned no message id")
        return message_id

    async def upload_chunks(
        self, message_id: str, plan: UploadPlan, *, first: int = 2, base_url: str | None = None
    ) -> None:
        """POST chunks first..total of a message MESH already created (also to resume one)."""
        for number in range(first, plan.total + 1):
            headers = {
                "Content-Type": "application/octet-stream",
                "mex-Chunk-Range": plan.chunk_range(number),
            }
            if plan.compressed:
                headers["Content-Encoding"] = "gzip"
            url = f"{self._mailbox_url(base_url)}/outbox/{quote(message_id)}/{number}"
            await self._request("POST", url, headers=headers, data=plan.chunks[number - 1])

    async def track(self, message_id: str, *, base_url: str | None = None) -> Tracking:
        """Where one of our sent messages is (accepted, acknowledged, error, ...)."""
        url = f"{self._mailbox_url(base_url)}/outbox/tracking?messageID={quote(message_id)}"
        return tracking_from_json((await self._request("GET", url)).json())

    async def track_local_id(
        self, local_id: str, *, base_url: str | None = None
    ) -> Tracking | None:
        """Our message with this local id, or None if MESH has none (so a send is safe).

        Uses MESH's tracking-by-local-id endpoint (marked deprecated in the API catalogue but
        still the only lookup by local id). Several messages with one local id -> error
        `mesh_local_id_ambiguous`: something else already sent under our id.
        """
        url = f"{self._mailbox_url(base_url)}/outbox/tracking/{quote(local_id, safe='')}"
        reply = await self._request("GET", url, ok=(200, 300, 404), accept="application/json")
        if reply.status == 404:
            return None
        if reply.status == 300:
            raise MeshError(
                "MESH holds several messages with this local id", code="mesh_local_id_ambiguous"
            )
        return tracking_from_json(reply.json())

    async def list_inbox(
        self, *, workflow_filter: str | None = None, page_size: int | None = None
    ) -> list[str]:
        """Every message id waiting in our inbox (following MESH's `links.next` pages)."""
        params = {"workflow_filter": workflow_filter, "max_results": page_size}
        query = urlencode({key: value for key, value in params.items() if value})
        url: str | None = f"{self._mailbox_url(None)}/inbox" + (f"?{query}" if query else "")
        found: list[str] = []
        while url:
            body = (await self._request("GET", url)).json()
            found.extend(str(item) for item in body.get("messages", []))
            following = (body.get("links") or {}).get("next")
            url = urljoin(self._base + "/", following) if following else None
        return found

    async def download(self, message_id: str) -> InboxMessage:
        """Fetch a message from our inbox: headers and all chunks, gunzipped by aiohttp."""
        url = f"{self._mailbox_url(None)}/inbox/{quote(message_id)}"
        first = await self._request("GET", url, ok=(200, 206))
        headers = mex_headers(first.headers)
        parts = [first.body]
        for number in range(2, chunk_count(headers) + 1):
            parts.append((await self._request("GET", f"{url}/{number}", ok=(200, 206))).body)
        return InboxMessage(message_id=message_id, headers=headers, body=b"".join(parts))

    async def acknowledge(self, message_id: str) -> None:
        """Tell MESH we have the message: it leaves our inbox and the sender sees acknowledged."""
        url = f"{self._mailbox_url(None)}/inbox/{quote(message_id)}/status/acknowledged"
        await self._request("PUT", url)
