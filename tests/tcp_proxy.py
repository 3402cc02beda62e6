"""A loopback TCP proxy in front of a shared service, which a test can cut or hang without
touching the service itself (others use it): ``down`` closes every connection through it
and refuses new ones, as a stopped server would; ``hang`` stops passing bytes either way,
as a server that stopped answering would; ``up`` serves again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from tests.loopback import free_port


class Proxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.state = "up"
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._links: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def close(self) -> None:
        self.down()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def up(self) -> None:
        self.state = "up"
        self._flowing.set()

    def hang(self) -> None:
        self.state = "hang"
        self._flowing.clear()

    def down(self) -> None:
        self.state = "down"
        self._flowing.set()
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.state == "down":
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._links |= {writer, up_writer}
        # Either side closing closes the other (a client's Terminate is answered by the
        # server closing, which the client waits for).
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for pipe in pipes:
            pipe.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)
        for w in (writer, up_writer):
            self._links.discard(w)
            w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            await self._flowing.wait()
            if self.state == "down":
                return
            writer.write(data)
            await writer.drain()


@contextlib.asynccontextmanager
async def proxied(host: str, port: int) -> AsyncIterator[Proxy]:
    proxy = Proxy(host, port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
