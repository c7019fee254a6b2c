"""The aiohttp application: routes from the contract table, middlewares, typed app state."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from aiohttp import web, web_response

from gateway.errors import DatabaseUnavailableError, GatewayError
from gateway.http import handlers
from gateway.http.admission import InflightBytes
from gateway.http.handlers import GATEWAY_KEY, INFLIGHT_KEY, LIMITS_KEY, LOG_IDS
from gateway.http.limits import ListenerLimits
from gateway.http.openapi import OPS_ROUTES, ROUTES, Route
from gateway.http.problems import problem, unavailable
from gateway.service import Gateway

log = structlog.get_logger("gateway.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HANDLERS: dict[str, Handler] = {
    "submit_disclosure": handlers.submit_disclosure,
    "get_disclosure": handlers.get_disclosure,
    "post_receipt": handlers.post_receipt,
    "jwks": handlers.jwks,
    "healthz": handlers.healthz,
    "readyz": handlers.readyz,
    "metrics": handlers.metrics,
    "openapi": handlers.openapi,
}


_HTTP_CODES = {
    401: "unauthenticated",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request; turn unexpected errors into a problem, never a traceback."""
    gateway = request.app[GATEWAY_KEY]
    started = time.perf_counter()
    route = request.match_info.route.resource
    endpoint = route.canonical if route is not None else "unmatched"
    structlog.contextvars.clear_contextvars()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        code = _HTTP_CODES.get(exc.status, exc.reason.lower().replace(" ", "_"))
        kept = {k: v for k, v in exc.headers.items() if k in ("WWW-Authenticate", "Allow")}
        response = problem(exc.status, code, exc.reason, headers=kept)
    except DatabaseUnavailableError:
        # Logged once per outage by the store; each request only gets its answer.
        response = unavailable("database_unavailable", "The database is unavailable; try again")
    except GatewayError as exc:
        response = problem(400, exc.code, exc.message)
    except Exception:
        log.exception("request_failed", path=endpoint, method=request.method)
        response = problem(500, "internal_error", "Internal error; the event is logged")
    gateway.metrics.requests.labels(endpoint, request.method, str(response.status)).inc()
    log.info(
        "request",
        **request.get(LOG_IDS, {}),
        method=request.method,
        path=endpoint,
        status_code=response.status,
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return response


LINGERING_SECONDS = 1.0
SERVER_NAME = "Gatehouse"  # in place of aiohttp's own `Server`, which names its version


def _application(
    gateway: Gateway, routes: tuple[Route, ...], client_max_size: int
) -> web.Application:
    # aiohttp writes its default `Server` into every response, including the 400s its parser
    # sends before any application code (or on_response_prepare signal) runs: the default
    # itself is the one place to change.
    web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]
    app = web.Application(
        middlewares=[observe],
        client_max_size=client_max_size,
        # After a refused or timed-out body, read what is left for at most this long (so the
        # client can read the answer) instead of aiohttp's 10 s.
        handler_args={"lingering_time": LINGERING_SECONDS},
    )
    app[GATEWAY_KEY] = gateway
    for route in routes:
        app.router.add_route(route.method, route.path, _HANDLERS[route.name], name=route.name)
    return app


def create_app(gateway: Gateway, *, owns_gateway: bool = False) -> web.Application:
    """Build the public HTTP application (the contract) around an opened gateway.

    `owns_gateway`: the app starts the gateway's background work when it starts and closes
    the gateway when it stops (a served process); otherwise the caller does both.
    """
    settings = gateway.settings
    app = _application(gateway, ROUTES, settings.max_body_bytes)
    app[LIMITS_KEY] = ListenerLimits(
        in_flight=settings.client_concurrency,
        receipt_rate=settings.receipt_rate,
        receipt_burst=settings.receipt_burst,
        rate_storage=settings.rate_limit_storage,
        body_timeout=settings.body_timeout,
        trusted_proxies=settings.trusted_proxy_networks,
    )
    app[INFLIGHT_KEY] = InflightBytes(settings.max_inflight_bytes)
    if owns_gateway:
        app.cleanup_ctx.append(_running(gateway))
    return app


def create_ops_app(gateway: Gateway) -> web.Application:
    """The operations listener's application: liveness, readiness and metrics, no bodies."""
    return _application(gateway, OPS_ROUTES, 1024)


SHUTDOWN_GRACE_SECONDS = 15.0


def _running(gateway: Gateway) -> Callable[[web.Application], AsyncIterator[None]]:
    async def running(_app: web.Application) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.close(SHUTDOWN_GRACE_SECONDS)

    return running
