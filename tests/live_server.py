"""FrameOps' real WSGI app served on loopback for clients that speak HTTP (agent, runner)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.core.wsgi import get_wsgi_application
from django.db import connections


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class LiveServer:
    """FrameOps' WSGI app on a fixed loopback port that can be stopped and started again."""

    def __init__(self) -> None:
        django_app = get_wsgi_application()

        def app(environ, start_response):  # type: ignore[no-untyped-def]
            try:
                return django_app(environ, start_response)
            finally:
                # The serving thread must not hold test-database connections past a request.
                connections.close_all()

        self.app = app
        self.httpd: WSGIServer | None = None
        self.port = 0

    def start(self) -> None:
        self.httpd = make_server("127.0.0.1", self.port, self.app, handler_class=_QuietHandler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self.httpd is not None
        self.httpd.shutdown()
        self.httpd.server_close()
        self.httpd = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def live_frameops(settings) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    srv = LiveServer()
    srv.start()
    yield srv
    if srv.httpd is not None:
        srv.stop()
