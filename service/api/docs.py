"""Interactive API docs served by the service itself.

Swagger UI (a release that reads OpenAPI 3.1, which Litestar writes) from the pip
package openapi-ui-bundles, pinned by the install and served from `ASSETS`: nothing
is loaded from a CDN, so the page works where payment services usually run (no
internet access) and executes only the code that was installed.
"""

from __future__ import annotations

from litestar import Router
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from openapi_ui_bundles.swagger_ui import static_path

ASSETS = "/schema-assets/swagger-ui"


def docs_assets() -> Router:
    return create_static_files_router(
        path=ASSETS, directories=[static_path], include_in_schema=False, name="docs-assets"
    )


def swagger_ui() -> SwaggerRenderPlugin:
    """Swagger UI at /schema and /schema/swagger, its scripts, styles and icon from ASSETS."""
    return SwaggerRenderPlugin(
        path=["/", "/swagger"],
        js_url=f"{ASSETS}/swagger-ui-bundle.js",
        css_url=f"{ASSETS}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS}/favicon-32x32.png'>",
    )
