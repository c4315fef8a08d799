"""GET /: the status page, three static files shipped in the package, served from memory.

The page is read-only and renders with `textContent` only; the Content-Security-Policy
allows scripts, styles and connections from this origin alone (no inline script, nothing
from outside), so even text crafted as markup can never run.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/static/page.css": ("page.css", "text/css; charset=utf-8"),
}
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


class StatusPage:
    """The page's files, read once from the package, then served from memory."""

    def __init__(self) -> None:
        self._bodies: dict[str, tuple[bytes, str]] = {}

    def load(self) -> None:
        """Read the files from the installed package."""
        folder = resources.files("supervisor.api") / "static"
        for path, (name, content_type) in _FILES.items():
            self._bodies[path] = ((folder / name).read_bytes(), content_type)

    def add_to(self, app: web.Application) -> None:
        """Register the routes (the files are read at the first request)."""
        for path in _FILES:
            app.router.add_get(path, self.serve)
        app.router.add_get("/favicon.ico", self.no_icon)

    async def no_icon(self, request: web.Request) -> web.Response:
        """Browsers ask for one; there is none (and a 404 would fill their console)."""
        return web.Response(status=204, headers=_HEADERS)

    async def serve(self, request: web.Request) -> web.Response:
        """One of the files, with the security headers."""
        if not self._bodies:
            self.load()
        body, content_type = self._bodies[request.path]
        return web.Response(body=body, headers={**_HEADERS, "Content-Type": content_type})
