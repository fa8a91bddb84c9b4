"""The page at / (and its keyboard, which can run in the page) and the OpenAPI page at /docs: fixed files,
read once from installed packages.

No route takes a path from the request, so nothing a request sends can name a file. The page loads
nothing from elsewhere (its Content-Security-Policy says so to the browser too). FastAPI's own /docs
fetches Swagger UI from a CDN, which a closed network or an offline classroom cannot reach; with
the serve extra's fastapi-offline installed, Swagger UI's files are served from here instead.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable
from importlib import resources

from fastapi import FastAPI, Response
from fastapi.openapi.docs import get_swagger_ui_html

PAGE_FILES = {
    "/": ("index.html", "text/html"),
    "/page.js": ("page.js", "text/javascript"),
    "/page.css": ("page.css", "text/css"),
    "/network.js": ("network.js", "text/javascript"),  # the keyboard in the page, from the model's export
    "/keyboard.js": ("keyboard.js", "text/javascript"),
}
DOCS_FILES = {
    "/docs-assets/swagger-ui-bundle.js": ("swagger-ui-bundle.js", "text/javascript"),
    "/docs-assets/swagger-ui.css": ("swagger-ui.css", "text/css"),
    "/docs-assets/favicon.png": ("favicon.png", "image/png"),
}
PAGE_HEADERS = {
    # 'wasm-unsafe-eval' lets the in-page keyboard compile its WebAssembly kernel (keyboard.js), and no eval
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; img-src 'self' data:; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
OFFLINE_DOCS = importlib.util.find_spec("fastapi_offline") is not None  # Swagger UI's files, packaged


def add_page(app: FastAPI) -> None:
    """GET / (and the files it loads); GET /docs from local files when they are installed."""
    _add_files(app, resources.files("seqtext.serve") / "static", PAGE_FILES, PAGE_HEADERS)
    if not OFFLINE_DOCS:
        return
    _add_files(app, resources.files("fastapi_offline") / "static", DOCS_FILES, {"Cache-Control": "max-age=86400"})

    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="seqtext API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)


def _add_files(app: FastAPI, folder: resources.abc.Traversable, files: dict, headers: dict[str, str]) -> None:
    for route, (name, media_type) in files.items():
        content = (folder / name).read_bytes()
        app.add_api_route(route, _file(content, media_type, headers), methods=["GET", "HEAD"], include_in_schema=False)


def _file(content: bytes, media_type: str, headers: dict[str, str]) -> Callable[[], Awaitable[Response]]:
    async def serve_file() -> Response:
        return Response(content, media_type=media_type, headers=headers)

    return serve_file
