"""Response headers that keep the dashboard and the API from being framed, sniffed or made
to run code from anywhere but the server itself.

The Content-Security-Policy allows scripts, styles, images and requests from the server's own
origin only (images also as ``data:`` URLs: the favicon), no inline script or style, no
plugins, no ``<base>``, forms that submit only to the server, and no framing at all
(``frame-ancestors 'none'``, with ``X-Frame-Options: DENY`` for older browsers). A page that
needs an inline script (Swagger UI's start-up) names it by its hash in a policy of its own.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SECURITY_HEADERS", "SecurityHeaders", "content_security_policy", "script_hash"]


def content_security_policy(*, script_hashes: Iterable[str] = ()) -> str:
    """The policy; ``script_hashes`` (from :func:`script_hash`) allow those inline scripts."""
    scripts = " ".join(["'self'", *(f"'{digest}'" for digest in script_hashes)])
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {scripts}",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "font-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


def script_hash(script: str) -> str:
    """The CSP source (``sha256-…``) that allows the inline ``<script>`` holding ``script``."""
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


SECURITY_HEADERS = {
    "Content-Security-Policy": content_security_policy(),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
"""Sent with every response that does not set its own."""


class SecurityHeaders:
    """ASGI middleware: add :data:`SECURITY_HEADERS` to every HTTP response (a response that
    sets one of them itself keeps its own, e.g. the policy of ``/docs``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
