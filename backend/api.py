"""The HTTP API (contract: docs/api.md). Routes are thin: parsing and status codes here, logic in ``service``."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import redis
import redis.asyncio as aioredis
from fastapi import Body, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi_offline import FastAPIOffline
from pydantic import ValidationError

from backend import service
from backend.analyser import NOTIFY_CHANNEL
from backend.recorder import run_recorder
from backend.store import Store
from topowatch import __version__
from topowatch.settings import Settings
from worker.presets import build_config, pair_configs

_SSE_KEEPALIVE_S = 15.0


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise HTTPException(422, detail=[{"loc": ["body"], "msg": "the body must be a JSON object", "type": "type"}])
    return body


def validation_detail(errors: Sequence[Any], prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Pydantic errors as messages that name the field or parameter, e.g. "lr must be > 0 and finite".

    ``loc`` starts with where the value came from ("body", "query", "path"); ``prefix`` adds it to errors
    raised on a body already parsed. Integer parts (a JSON decode error's position) name nothing."""
    detail = []
    for error in errors:
        loc = [*prefix, *error["loc"]]
        field = ".".join(part for part in loc[1:] if isinstance(part, str)) or loc[0]
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown field {field!r}"
        elif error["type"] == "missing":
            message = f"{field} is required"
        elif not message.startswith(field):
            message = f"{field}: {message}"
        detail.append({"loc": loc, "msg": message, "type": error["type"]})
    return detail


def create_app(settings: Settings, redis_url: str, record_events: bool = True) -> FastAPI:
    local = threading.local()

    def store() -> Store:
        # One SQLite connection per thread: FastAPI runs sync routes in a thread pool.
        if not hasattr(local, "store"):
            local.store = Store(settings.db_path)
        return local.store

    client = redis.Redis.from_url(redis_url, socket_timeout=5)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stopping = threading.Event()
        recorder = None
        if record_events:
            recorder = threading.Thread(target=run_recorder, args=(Store(settings.db_path), redis_url, stopping),
                                        name="recorder", daemon=True)
            recorder.start()
        yield
        stopping.set()
        if recorder is not None:
            recorder.join(timeout=5)

    # /docs and /redoc from the package's bundled Swagger UI and ReDoc files, not a CDN: they work offline.
    app = FastAPIOffline(title="topowatch", version=__version__, lifespan=lifespan,
                         description="Live topology of the neuron manifold during training. Contract: docs/api.md")
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "POST"], allow_headers=["*"])

    @app.exception_handler(service.NotFound)
    async def not_found(_: Request, exc: service.NotFound) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(exc)})

    @app.exception_handler(service.Conflict)
    async def conflict(_: Request, exc: service.Conflict) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.exception_handler(ValidationError)
    async def invalid(_: Request, exc: ValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": validation_detail(exc.errors(), ("body",))})

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": validation_detail(exc.errors())})

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        try:
            redis_ok = bool(client.ping())
        except redis.RedisError:
            redis_ok = False
        return {"status": "ok" if redis_ok else "degraded", "redis": redis_ok, "version": __version__}

    @app.get("/api/presets")
    def presets() -> list[dict[str, Any]]:
        return service.presets()

    @app.get("/api/fields")
    def fields() -> list[dict[str, Any]]:
        return service.fields()

    @app.post("/api/runs", status_code=201)
    def create_run(body: Any = Body(...)) -> dict[str, Any]:
        config = build_config(_object(body))
        run_id = service.submit_run(store(), client, config)
        return {"id": run_id, "config": config.model_dump()}

    @app.post("/api/runs/check")
    def check_run(body: Any = Body(...)) -> dict[str, Any]:
        """Validate a run request without starting it: the form shows every field's error in one go."""
        return {"config": build_config(_object(body)).model_dump()}

    @app.post("/api/runs/pair", status_code=201)
    def create_pair(body: Any = Body(...)) -> dict[str, Any]:
        ids = [service.submit_run(store(), client, config) for config in pair_configs(_object(body))]
        return {"ids": ids, "compare": f"/compare?runs={','.join(ids)}"}

    @app.get("/api/runs")
    def list_runs() -> list[dict[str, Any]]:
        return service.list_runs(store())

    @app.get("/api/runs/{run_id}")
    def get_run(run_id: str) -> dict[str, Any]:
        return service.get_run(store(), run_id)

    @app.post("/api/runs/{run_id}/stop", status_code=202)
    def stop_run(run_id: str) -> dict[str, Any]:
        return service.stop_run(store(), client, run_id)

    @app.get("/api/runs/{run_id}/frames")
    def frames(
        run_id: str,
        include: str = Query("index", pattern="^(index|full)$"),
        start: int = Query(0, ge=0, le=service.MAX_STEP),
        end: int = Query(service.MAX_STEP, ge=0, le=service.MAX_STEP),
        limit: int = Query(100, ge=1, le=500),
    ) -> dict[str, Any]:
        if include == "full":
            return {"run_id": run_id, "frames": service.frame_range(store(), run_id, start, end, limit)}
        return {"run_id": run_id, "frames": service.frame_index(store(), run_id, start, end)}

    @app.get("/api/runs/{run_id}/frames/{step}")
    def frame(run_id: str, step: int = Path(ge=0, le=service.MAX_STEP)) -> dict[str, Any]:
        return service.frame(store(), run_id, step)

    @app.get("/api/runs/{run_id}/betti")
    def betti(
        run_id: str,
        scale: float = Query(0.25, gt=0, le=1),
        standardised: bool = False,
        min_length: float = Query(0.1, ge=0, le=1),
    ) -> dict[str, Any]:
        return service.betti_curve(store(), run_id, scale, standardised, min_length)

    @app.get("/api/runs/{run_id}/neighbourhood")
    def neighbourhood(
        run_id: str,
        k: int = Query(10, ge=1, le=256),
        step: int | None = Query(None, ge=0, le=service.MAX_STEP),
    ) -> dict[str, Any]:
        return service.neighbourhood_curve(store(), run_id, k, step)

    @app.get("/api/events")
    async def events(request: Request, run_id: str | None = None) -> StreamingResponse:
        if run_id is not None:
            # A primary-key read (WAL: never waits on writers), fine on the event loop.
            service.require_run(store(), run_id)

        async def stream() -> AsyncIterator[str]:
            subscriber = aioredis.Redis.from_url(redis_url)
            pubsub = subscriber.pubsub()
            await pubsub.subscribe(NOTIFY_CHANNEL)
            try:
                yield ": connected\n\n"
                while not await request.is_disconnected():
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=_SSE_KEEPALIVE_S)
                    if message is None:
                        yield ": keep-alive\n\n"
                        continue
                    data = json.loads(message["data"])
                    if run_id is None or data.get("run_id") == run_id:
                        yield f"event: {data.pop('type')}\ndata: {json.dumps(data)}\n\n"
            finally:
                await pubsub.aclose()
                await subscriber.aclose()

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    return app
