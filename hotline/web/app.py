"""Assembling the ASGI application."""

from __future__ import annotations

from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from tortoise import connections
from tortoise.contrib.starlette import RegisterTortoise

import hotline
from cases import timers
from cases.storage import LocalStorage
from hotline.db import tortoise_config
from hotline.jobs import Services, Ticker
from hotline.queue import Queue
from hotline.routing_service import RoutingService
from hotline.settings import Settings
from hotline.sla_provider import SlaProvider, load_policy_file
from hotline.web import callback_pages, citizen, console, pages, sounds, twilio_callbacks, twilio_sms, twilio_voice
from hotline.web.api import api
from hotline.web.framework import SESSION_COOKIE, BodyLimit
from hotline.web.partners import routes as partner_routes


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    policies = load_policy_file(settings.sla_policies_file)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        async with RegisterTortoise(app, config=tortoise_config(settings.database_url)):
            await app.state.routing.start()
            jobs = Services.build(settings, routing=app.state.routing, sla=app.state.sla)
            app.state.jobs = jobs
            queue = ticker = None
            if settings.redis_url:
                queue = Queue(settings.redis_url)
                jobs.enqueue = queue.enqueue
            elif settings.embedded_sweep:
                ticker = Ticker(jobs, settings.sweep_seconds)
                ticker.start()
            app.state.ticker = ticker
            try:
                yield
            finally:
                if ticker is not None:
                    await ticker.stop()
                if queue is not None:
                    await queue.close()

    async def healthz(request: Request) -> JSONResponse:
        checks = {"database": "ok"}
        try:
            await connections.get("default").execute_query("SELECT 1")
        except Exception as exc:  # any failure means unreachable, and says why
            checks["database"] = f"unreachable: {type(exc).__name__}"
        checks["redis"] = "not configured" if not settings.redis_url else "configured"
        if request.app.state.ticker is not None:
            checks["timers"] = "embedded"
        ok = checks["database"] == "ok"
        return JSONResponse({"status": "ok" if ok else "error", **checks}, status_code=200 if ok else 503)

    spec = api.openapi("12345 热线工单系统 API", hotline.__version__)

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(spec)

    async def http_error(request: Request, exc: HTTPException):
        if request.url.path.startswith("/api/") or request.url.path == "/healthz":
            messages = {404: "地址不存在", 405: "不支持的请求方法", 413: "请求体过大"}
            return JSONResponse(
                {"error": f"http_{exc.status_code}", "message": messages.get(exc.status_code, str(exc.detail))},
                status_code=exc.status_code,
                headers=getattr(exc, "headers", None),
            )
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code)

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/api/openapi.json", openapi),
            *api.routes(),
            *pages.routes(),
            *citizen.routes(),
            *twilio_sms.routes(),
            *twilio_voice.routes(),
            *twilio_callbacks.routes(),
            *callback_pages.routes(),
            *console.routes(),
            *sounds.routes(),
            Mount("/static", StaticFiles(packages=[("hotline", "static")]), name="static"),
            *partner_routes(),
        ],
        middleware=[
            Middleware(
                BodyLimit,
                default=settings.max_body_bytes,
                # An upload may carry a whole attachment plus its multipart framing.
                limits=[
                    (path, max(limit, settings.max_attachment_bytes + settings.max_body_bytes))
                    for path, limit in api.body_limits()
                ],
            ),
            Middleware(
                SessionMiddleware,
                secret_key=settings.secret_key,
                session_cookie=SESSION_COOKIE,
                max_age=settings.session_max_age,
                same_site="lax",
                https_only=settings.secure_cookies,
            )
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.sla = SlaProvider(policies, timers.Ladder(warn_share=settings.warn_share))
    app.state.storage = LocalStorage(settings.storage_dir)
    app.state.routing = RoutingService(settings)
    return app


