"""``sagas serve``: the HTTP API, the web dashboard and Prometheus metrics, in one process."""

from sagas.server.app import create_app

__all__ = ["create_app"]
