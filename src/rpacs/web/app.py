"""The FastAPI application: pages, the JSON API, sessions, security headers and errors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from .. import __version__
from ..errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    RpacsError,
    TooLargeError,
)
from ..installation import Installation
from ..settings import Settings

HERE = Path(__file__).parent
log = logging.getLogger(__name__)

#: Sent with every response. No inline script or style is allowed, nothing from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}

_STATUS: list[tuple[type[RpacsError], int]] = [
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (TooLargeError, 413),  # before its base class, InvalidInputError
    (InvalidInputError, 422),
]


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error_response(request: Request, status: int, message: str,
                    problems: list[str]) -> Response:
    if _is_api(request):
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"detail": message, "problems": problems}, status_code=status,
                            headers=headers)
    if status == 401:  # a page: log in, then come back here
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(
        request, "error.html",
        {"status": status, "message": message, "problems": problems,
         "principal": getattr(request.state, "principal", None)},
        status_code=status)


def create_app(settings: Settings) -> FastAPI:
    """The web app on the installation of ``settings`` (opened, and migrated, here)."""
    inst = Installation.open(settings)
    # Export jobs whose process ended while no server was looking: failed, resumable.
    from ..export import recover_interrupted

    recovered = recover_interrupted(inst)
    if recovered:
        log.warning("%d export job(s) were interrupted; they can be resumed", recovered)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        inst.close()

    app = FastAPI(
        title="rpacs", version=__version__, lifespan=lifespan,
        description="The research PACS API. Authenticate with 'Authorization: Bearer TOKEN' "
                    "(rpacs token create NAME). A project you are not in answers 404.",
        openapi_url="/api/openapi.json", docs_url=None, redoc_url=None,
    )
    app.state.installation = inst
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals["version"] = __version__
    app.state.templates = templates

    body_limit = settings.review_upload_max_mb * 2**20 + 64 * 1024

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        # No request body is read, not even to find a CSRF token, before its size is known
        # to be within the limit: the largest body anyone may send is the zip upload.
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            length = request.headers.get("content-length")
            if length is None and request.headers.get("transfer-encoding"):
                response = _error_response(request, 411, "send the body with a "
                                           "Content-Length", ["Content-Length required"])
            elif length is not None and (not length.isdigit() or int(length) > body_limit):
                message = (f"the request is larger than {settings.review_upload_max_mb} MB, "
                           "the limit of this server (review_upload_max_mb)")
                response = _error_response(request, 413, message, [message])
            else:
                response = await call_next(request)
        else:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    # Added last, so it runs first: the session is there for every other layer.
    app.add_middleware(
        SessionMiddleware, secret_key=settings.session_secret.hex(),
        session_cookie="rpacs_session", max_age=int(settings.web_session_hours * 3600),
        same_site="lax", https_only=settings.web_secure_cookie,
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    from .api import router as api_router
    from .pages import router as pages_router

    app.include_router(pages_router)
    app.include_router(api_router)

    @app.exception_handler(RpacsError)
    async def rpacs_error(request: Request, exc: RpacsError) -> Response:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)
        problems = (exc.problems if isinstance(exc, InvalidInputError | ConflictError)
                    else [str(exc)])
        return _error_response(request, status, str(exc), problems)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error.get("loc", ()))
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        return _error_response(request, 422, "; ".join(problems), problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = str(exc.detail) if exc.detail else "error"
        if exc.status_code == 404:
            message = f"no page at {request.url.path}"
        return _error_response(request, exc.status_code, message, [message])

    return app


def app_from_environment() -> FastAPI:
    """The app of ``Settings.load()``: what ``rpacs serve`` hands to uvicorn's workers."""
    return create_app(Settings.load())
