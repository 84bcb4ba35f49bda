"""``/docs``: Swagger UI from packaged assets (swagger-ui-bundle), no CDN, no inline script.

The page loads the Swagger UI files and a small start script from this API itself, so the docs
work offline and under a Content-Security-Policy of ``'self'`` (the response carries one). The
OpenAPI document is flask-smorest's ``/openapi.json``.
"""

from __future__ import annotations

import html
from pathlib import Path

from flask import Blueprint, Flask, Response, abort, send_from_directory
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

ASSETS = Path(swagger_ui_path)
#: The files of the bundle the page uses; nothing else of the package directory is served.
_SERVED = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png"})

#: Everything from this origin; images also as data: URIs (Swagger UI's icons).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/start.js"></script>
</body>
</html>
"""

# validatorUrl null: Swagger UI would otherwise send the document to validator.swagger.io.
_START = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null
  });
});
"""


def _strict(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


def add_api_docs(app: Flask, title: str) -> None:
    """Serve Swagger UI for ``app``'s OpenAPI document at ``/docs``."""
    docs = Blueprint("tacso_docs", __name__)
    page = _PAGE.format(title=html.escape(title))

    @docs.get("/docs")
    def docs_page() -> Response:
        return _strict(Response(page, mimetype="text/html"))

    @docs.get("/docs/assets/start.js")
    def docs_start() -> Response:
        return _strict(Response(_START, mimetype="text/javascript"))

    @docs.get("/docs/assets/<name>")
    def docs_asset(name: str) -> Response:
        if name not in _SERVED:
            abort(404)
        return _strict(send_from_directory(ASSETS, name, max_age=3600))

    app.register_blueprint(docs)
