"""ASGI entry points for hypercorn.

``hypercorn --worker-class trio trio_lingma.asgi:app`` (settings from the environment and
``.env``) or ``'trio_lingma.asgi:create_app()'``. ``app`` builds the real application on its
first ASGI call (the lifespan startup in the worker), so importing this module starts nothing.

hypercorn's CLI owns the listening sockets, so ``HOST``/``PORT`` and the start-up check "no
API_KEYS on a non-loopback HOST" do not apply here; the app's ASGI layer (``http/served.py``)
refuses instead each request that reached a non-loopback address without keys. Pass
``--keep-alive $KEEP_ALIVE_TIMEOUT`` and ``--backlog 2048`` as the Containerfile does.
"""

from __future__ import annotations

from typing import Any

from quart_trio import QuartTrio

from .http.app import create_app as _create_app
from .observability.logs import configure_logging
from .settings import Settings, load_dotenv

__all__ = ["app", "create_app"]


def create_app() -> QuartTrio:
    """The application configured from the environment (and an optional ``.env``)."""
    import os

    settings = Settings.from_env({**load_dotenv(), **os.environ})
    configure_logging(settings.log_level, settings.log_format)
    return _create_app(settings)


class _LazyApp:
    """An ASGI app that builds the configured application on first use."""

    def __init__(self) -> None:
        self._app: QuartTrio | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = create_app()
        await self._app(scope, receive, send)


app = _LazyApp()
