"""``/docs``: Swagger UI on the app's OpenAPI document, its assets served by the server
itself from the ``swagger-ui-bundle-v2`` package (no CDN: the page works offline and loads
nothing from another host)."""

from __future__ import annotations

import re

import swagger_ui_bundle  # type: ignore[import-untyped]  # static files only, no types
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from sagas.server.security import content_security_policy, script_hash

__all__ = ["ASSETS", "install_docs"]

ASSETS = "/docs/assets"
"""Where Swagger UI's files are served."""

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def install_docs(app: FastAPI, title: str) -> None:
    """Serve Swagger UI at ``/docs`` (create ``app`` with ``docs_url=None``)."""
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_bundle.swagger_ui_path)), name="swagger")

    @app.get("/docs", include_in_schema=False, name="docs")
    def docs(request: Request) -> HTMLResponse:
        # The configured root path (never the Host header): the page's URLs are host-relative.
        root = str(request.scope.get("root_path", "")).rstrip("/")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{title} - API",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png",
            oauth2_redirect_url=None,
        )
        html = bytes(page.body).decode("utf-8")
        # Swagger UI starts from an inline script: the policy allows that one by its hash.
        hashes = [script_hash(script) for script in _INLINE_SCRIPT.findall(html)]
        policy = content_security_policy(script_hashes=hashes)
        return HTMLResponse(html, headers={"Content-Security-Policy": policy})
