"""A TCP proxy a test controls, between the service and a real server: forward, cut, stall."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    """Forwards loopback connections to `target`; `cut()`, `stall()` and `restore()` on command.

    Cut: every open connection is reset and new ones are closed at once (a server that went
    away). Stall: connections stay open but no byte moves either way (a hung network or server).
    `cut_after(marker)`: the next client chunk holding `marker` reaches the server, then that
    connection is cut before any answer comes back (the answer to a COMMIT lost on the way).
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._cut = False
        self._cut_marker: bytes | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> TcpProxy:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> None:
        """Reset every connection and refuse new ones until `restore()`."""
        self._cut = True
        self._flowing.set()
        self._reset_all()

    def stall(self) -> None:
        """Stop moving bytes (connections stay open) until `restore()`."""
        self._flowing.clear()

    def restore(self) -> None:
        """Forward again."""
        self._cut = False
        self._flowing.set()

    def cut_after(self, marker: bytes) -> None:
        """Cut one connection right after its next client chunk containing `marker` is sent."""
        self._cut_marker = marker

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        self._reset_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _reset_all(self) -> None:
        for writer in list(self._writers):
            transport = writer.transport
            if isinstance(transport, asyncio.Transport):
                transport.abort()
        self._writers.clear()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._cut:
            client_w.transport.abort()
            return
        await self._flowing.wait()
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self._writers.update((client_w, server_w))
        muted = asyncio.Event()  # set: the server's answers on this connection are dropped
        upstream = asyncio.create_task(self._pipe(client_r, server_w, muted, client=client_w))
        downstream = asyncio.create_task(self._pipe(server_r, client_w, muted))
        for task in (upstream, downstream):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        muted: asyncio.Event,
        *,
        client: asyncio.StreamWriter | None = None,
    ) -> None:
        """Copy bytes one way; `client` is given for the client-to-server direction."""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, RuntimeError):
            while data := await reader.read(65536):
                await self._flowing.wait()
                if self._cut or muted.is_set():
                    break
                marked = (
                    client is not None and self._cut_marker is not None and self._cut_marker in data
                )
                if marked:
                    self._cut_marker = None
                    muted.set()  # the answer to this chunk never reaches the client
                writer.write(data)
                await writer.drain()
                if marked and client is not None:
                    _abort(client)
                    await asyncio.sleep(0.2)  # the server runs the statement meanwhile
                    break
        _abort(writer)


def _abort(writer: asyncio.StreamWriter) -> None:
    transport = writer.transport
    if isinstance(transport, asyncio.Transport):
        transport.abort()
