"""The HTTP layer: a FastAPI app over a :class:`~tagcode.serve.engine.SearchService`.

FastAPI (on Starlette, run by uvicorn) because it derives the OpenAPI schema from the typed endpoints, which
schemathesis then fuzzes, and because the project already pins it (MLflow's server needs it). Every refusal
is a 4xx with a JSON body ``{"error": "<one line>"}``: unknown ids, champions or tags, invalid parameters,
uploads over the size limit (413, checked before and while reading), bytes that are not an image or are a
decompression bomb (422, through the project's safe decoder). Image ids travel as query parameters and are
only ever looked up in dictionaries, so ``../`` in an id is just an unknown id.
"""

from __future__ import annotations

import logging
import time
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from tagcode.errors import TagcodeError, one_line
from tagcode.serve.catalog import ServeError
from tagcode.serve.engine import MAX_K, SearchService
from tagcode.serve.settings import DEFAULT_MAX_UPLOAD

log = logging.getLogger("tagcode.serve")


class Error(BaseModel):
    """Every refusal: a one-line message."""

    error: str


class ChampionInfo(BaseModel):
    """A servable champion (``key`` is what the other endpoints' ``champion`` parameter takes)."""

    key: str
    method: str
    bits: int
    kind: str
    source: str
    database: int
    queries: int
    metric: str
    tag_search: bool
    image_search: bool


class Result(BaseModel):
    """One retrieved database image: ``score`` is a Hamming distance (lower is closer) or an inner product
    (higher is closer), per the response's ``metric``; ``relevant`` is null without ground truth."""

    rank: int
    id: str
    score: float
    tags: list[str]
    thumbnail: bool
    relevant: bool | None


class SearchResponse(BaseModel):
    """The query as understood, and the top-k results, best first."""

    champion: str
    metric: str
    query: dict[str, Any]
    results: list[Result]
    search_ms: float


class QueryItem(BaseModel):
    """A query-set image the page can pick."""

    id: str
    tags: list[str]
    ground_truth: bool


class QueryPage(BaseModel):
    """A page of the query set."""

    total: int
    offset: int
    queries: list[QueryItem]


class Health(BaseModel):
    """Liveness with what is loaded."""

    status: str
    champions: list[str]


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Error, "description": text} for code, text in
    ((400, "not possible for this champion"), (404, "unknown champion, image id or tag"),
     (413, "upload larger than the limit"), (422, "invalid parameter, or bytes that are not a usable image"))}
IDS = Query(min_length=1, max_length=512, description="an image id of the query set or the database")
CHAMPION = Query(None, max_length=200, description="champion key (GET /api/champions); default: the first")
K = Query(20, ge=1, le=MAX_K, description="number of results")


class Metrics:
    """Prometheus metrics of one app, in a registry of its own: requests by route and status, latency by
    route, and the database size of each champion."""

    def __init__(self, service: SearchService) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("tagcode_serve_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("tagcode_serve_request_seconds", "request latency by route", ["route"],
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5),
                                 registry=self.registry)
        codes = Gauge("tagcode_serve_database_codes", "database codes per champion", ["champion"],
                      registry=self.registry)
        for key, ch in service.champions.items():
            codes.labels(key).set(len(ch.database.ids))

    def observe(self, route: str, status: int, seconds: float) -> None:
        """Count one request."""
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def exposition(self) -> bytes:
        """The text exposition format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused with a 413 as soon as it (or its declared length) passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ServeError(413, f"upload of {int(declared)} bytes is over the {limit}-byte limit")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ServeError(413, f"upload is over the {limit}-byte limit")
    if not body:
        raise ServeError(422, "empty upload: send the image's bytes as the request body")
    return bytes(body)


def create_app(service: SearchService, *, max_upload: int = DEFAULT_MAX_UPLOAD) -> FastAPI:
    """The service's FastAPI app (endpoints under ``/api``, ``/health``, ``/metrics``, the page at ``/``)."""
    app = FastAPI(title="tagcode search", version="1", description="Search a tagcode champion by image, by tag "
                  "words or by image id; thumbnails, health and Prometheus metrics.")
    metrics = Metrics(service)
    page = files("tagcode.serve").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.middleware("http")
    async def count(request: Request, call_next: Any) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.observe(getattr(route, "path", "unmatched"), response.status_code, time.perf_counter() - start)
        return response

    @app.exception_handler(ServeError)
    async def refused(_: Request, exc: ServeError) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(TagcodeError)
    async def bad_input(_: Request, exc: TagcodeError) -> JSONResponse:
        return _error(422, one_line(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(422, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        response = _error(exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})  # e.g. Allow on a 405
        return response

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return _error(500, f"internal error: {one_line(exc)}")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return page

    @app.get("/health", response_model=Health)
    def health() -> dict[str, Any]:
        """Liveness: the loaded champions."""
        return {"status": "ok", "champions": list(service.champions)}

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    def prometheus() -> Response:
        """Prometheus metrics (text exposition format)."""
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/champions", response_model=list[ChampionInfo])
    def champions() -> list[dict[str, Any]]:
        """The champions this service holds (method × bits) and what each can be searched by."""
        return service.describe()

    @app.get("/api/queries", response_model=QueryPage, responses=ERRORS)
    def queries(limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10_000_000)) -> dict[str, Any]:
        """A page of the query set, to pick a query from."""
        return service.queries(limit, offset)

    @app.get("/api/search/id", response_model=SearchResponse, responses=ERRORS)
    def search_id(id: str = IDS, champion: str | None = CHAMPION, k: int = K) -> dict[str, Any]:
        """Search with a query-set or database image's own codes."""
        return service.by_id(champion, id, k)

    @app.get("/api/search/tags", response_model=SearchResponse, responses=ERRORS)
    def search_tags(q: str = Query(min_length=1, max_length=1000, pattern=r"[^\W_]",
                                   description="tags, comma-separated (at least one letter or digit)"),
                    champion: str | None = CHAMPION, k: int = K) -> dict[str, Any]:
        """Search with tag words (champions whose query side is word-vector space: WSDHQ)."""
        return service.by_tags(champion, q, k)

    @app.post("/api/search/image", response_model=SearchResponse, responses=ERRORS, openapi_extra={
        "requestBody": {"required": True, "description": f"the image file's bytes (at most {max_upload} bytes)",
                        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def search_image(request: Request, champion: str | None = CHAMPION, k: int = K) -> dict[str, Any]:
        """Search with an uploaded image (JPEG, PNG, GIF, TIFF, BMP, WebP), sent as the raw request body."""
        data = await _read_limited(request, max_upload)
        return await run_in_threadpool(service.by_image, champion, data, k)

    @app.get("/api/thumbnail", response_class=Response, responses={
        200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}, **ERRORS})
    def thumbnail(id: str = IDS) -> Response:
        """The cached thumbnail of an image (PNG)."""
        return Response(service.catalog.thumbnail_png(id), media_type="image/png",
                        headers={"Cache-Control": "max-age=86400"})

    return app
