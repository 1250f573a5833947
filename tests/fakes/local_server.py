"""What every fake API server shares: an aiohttp app on 127.0.0.1 at a free port, started and
stopped by tests and benchmarks, usable as `async with`."""
from __future__ import annotations

import json
from typing import Any, Self

from aiohttp import web


class LocalServer:
    """Subclasses add their routes in `routes(app)` and let go of their own long-lived
    connections in `closing()` (long polls, websockets) so that stopping never hangs."""

    port: int = 0
    _runner: web.AppRunner | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def closing(self) -> None:
        """Called before the server stops."""

    async def start(self) -> Self:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        await self.closing()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def decode_form_value(value: Any) -> Any:
    """Clients send objects (blocks, reply markup) as JSON strings inside form fields and query
    parameters: decode those, leave everything else as sent."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
