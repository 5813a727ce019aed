"""The prediction service as an ASGI app (Starlette): ``create_app(...)``.

Routes:

* ``POST /v1/score`` — a features document in, its predictions document out, streamed batch
  by batch in the request's layout (see :mod:`ppml.service.wire`). Bearer token required.
* ``GET /v1/model`` — the model's public description; ``GET /v1/model/<file>`` the public files
  (``Model.json``, ``col_tnf.pkl``) — nothing else, whatever the path says.
* ``GET /v1/schema/`` and ``/v1/schema/<name>.json`` — the JSON Schemas of the documents.
* ``GET /healthz``, ``GET /metrics``.

Errors are ``{"error": "…"}`` with 400 (malformed document), 401 (no or unknown token), 404,
408 (upload stalled), 409 (another model or codec), 413 (body too large), 415 (not JSON),
429 (daily quota; ``Retry-After``) or 503 (saturated; ``Retry-After``). Once an answer has
started (status 200), a failure can only cut it short: the service then ends it with a line
``{"error": "…"}`` instead of its end, which every reader refuses as incomplete.

Like ``ServerModelRun.py``, nothing here imports pandas, scikit-learn or numpy.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import artifacts, files, server, streams
from ..documents import EncryptedFeatures, ModelParameters, check_count
from ..errors import PpmlError
from . import wire
from .clients import ClientDB, seconds_until_tomorrow, today
from .observe import AuditLog, Metrics, scrub
from .pool import NoiseReserve, ScoringPool

API = "/v1"
#: Batches read, validated and charged before the answer starts: a document of up to this many
#: batches is refused whole (400, 409, 429) or answered whole.
PEEK_BATCHES = 64
JSON_TYPE = "application/json"
JSONL_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/json-seq")
SCHEMA_DIR = Path(__file__).with_name("schema")
#: The model files a customer may download, by URL name → path inside the model folder. An
#: allowlist of names, read into memory at start-up: no request path ever reaches the disk.
PUBLIC_FILES = {
    artifacts.MODEL_JSON: f"{artifacts.PARAMS_DIR}/{artifacts.MODEL_JSON}",
    artifacts.COL_TNF: artifacts.COL_TNF,
}


@dataclass
class Settings:
    """How the service behaves; the ``serve`` command's options."""

    workers: int = 1
    scheduler: str | None = None
    max_body_bytes: int = 256 << 20
    allow_weak_key: bool = False
    #: Requests scored at once (each keeps ``2 × workers`` batches in the pool); default 2 × workers.
    active: int | None = None
    #: Requests that may wait for a turn beyond those; more get 503.
    queue: int = 16
    #: Seconds a request may wait for its turn before 503.
    queue_timeout: float = 30.0
    #: Seconds without a byte from the client (upload) or without progress sending to it.
    idle_timeout: float = 30.0
    #: Seconds an upload may take in all.
    upload_timeout: float = 600.0


class PublicModel:
    """What the company publishes about its model, read once: ``Model.json`` and, if the model
    folder has it, ``col_tnf.pkl`` (bytes and SHA-256)."""

    def __init__(self, params: ModelParameters, model_dir: Path | None):
        self.spec = params.spec
        self.files: dict[str, tuple[bytes, str]] = {}
        self.files[artifacts.MODEL_JSON] = (files.dump_json(self.spec.to_dict()).encode(),
                                            PUBLIC_FILES[artifacts.MODEL_JSON])
        if model_dir is not None and (model_dir / artifacts.COL_TNF).is_file():
            data = files.read_bytes(model_dir / artifacts.COL_TNF)
            self.files[artifacts.COL_TNF] = (data, PUBLIC_FILES[artifacts.COL_TNF])

    def description(self, base: str) -> dict:
        spec = self.spec.to_dict()
        return {
            "format": "ppml.model-description", "version": 1,
            "model_fingerprint": self.spec.fingerprint,
            "model": spec,
            "files": {name: {"url": f"{base}{API}/model/{name}", "path": path, "bytes": len(data),
                             "sha256": hashlib.sha256(data).hexdigest()}
                      for name, (data, path) in self.files.items()},
            "score": f"{base}{API}/score",
            "schemas": f"{base}{API}/schema/",
        }


class _Refused(Exception):
    """An answer given before the response starts: a status and a message."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class _ClientGone(Exception):
    pass


def _status_of(error: Exception) -> int:
    if isinstance(error, wire.BodyTooLarge):
        return 413
    if isinstance(error, wire.BodyTimeout):
        return 408
    return 400


class Service:
    """State shared by the routes: model, pool, clients, metrics, audit log, admission."""

    def __init__(self, params: ModelParameters, db: ClientDB, settings: Settings, public: PublicModel,
                 audit: AuditLog):
        self.params, self.db, self.settings, self.public, self.audit = params, db, settings, public, audit
        self.pool = ScoringPool(settings.workers, settings.scheduler)
        self.noise = NoiseReserve()
        self.metrics = Metrics()
        self.ready = False
        self.admitted = 0
        # Made at start-up, in the event loop, once the number of active requests is known.
        self._turns: asyncio.Semaphore
        self._idle: asyncio.Event
        self._wanted: asyncio.Event
        self._refill_task: asyncio.Task | None = None
        self.schemas = {p.name: p.read_bytes() for p in sorted(SCHEMA_DIR.glob("*.json"))}

    @property
    def active(self) -> int:
        return self.settings.active or 2 * self.pool.workers

    async def start(self) -> None:
        await self.pool.start()
        self._turns = asyncio.Semaphore(self.active)
        self._idle, self._wanted = asyncio.Event(), asyncio.Event()
        self._idle.set()
        self._refill_task = asyncio.ensure_future(self._refill())
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        if self._refill_task is not None:
            self._refill_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refill_task
        await self.pool.close()
        self.audit.close()

    # -- POST /v1/score ------------------------------------------------------------------------
    async def score(self, scope, receive, send) -> None:
        started = time.perf_counter()
        log: dict[str, Any] = dict(client=None, records=0, batches=0, bytes_in=0, bytes_out=0, error=None)
        status = 500
        self.metrics.in_flight.inc()
        try:
            status = await self._score(scope, receive, send, log)
        except _ClientGone:
            status = 499  # the client closed the connection (nginx's convention)
            log["error"] = "client disconnected"
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(f"{API}/score", str(status)).inc()
            self.metrics.duration.labels(f"{API}/score").observe(elapsed)
            self.metrics.bytes_in.inc(log["bytes_in"])
            self.metrics.bytes_out.inc(log["bytes_out"])
            self.audit.write(method="POST", path=f"{API}/score", status=status, duration=elapsed,
                             peer=_peer(scope), **log)

    async def _score(self, scope, receive, send, log) -> int:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        try:
            client = await asyncio.to_thread(self.db.authenticate, _bearer(headers.get("authorization")))
            if client is None:
                raise _Refused(401, "missing or unknown bearer token (Authorization: Bearer TOKEN)",
                               {"WWW-Authenticate": 'Bearer realm="ppml"'})
            log["client"] = client.name
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != JSON_TYPE and ctype not in JSONL_TYPES:
                raise _Refused(415, f"Content-Type must be {JSON_TYPE} or application/x-ndjson, "
                                    f"got {scrub(ctype) or 'none'!r}")
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.settings.max_body_bytes):
                raise _Refused(413, f"request body is larger than the server's limit of "
                                    f"{self.settings.max_body_bytes:,} bytes")
            if not self.ready:
                raise _Refused(503, "the service is starting or stopping", {"Retry-After": "1"})
            if self.admitted >= self.active + self.settings.queue:
                raise _Refused(503, "the service is saturated; retry later", {"Retry-After": "1"})
        except _Refused as r:
            return await _send_error(send, r, log)
        self.admitted += 1
        self._idle.clear()
        try:
            try:
                await asyncio.wait_for(self._turns.acquire(), self.settings.queue_timeout)
            except asyncio.TimeoutError:
                return await _send_error(send, _Refused(503, "the service is saturated; retry later",
                                                        {"Retry-After": "1"}), log)
            try:
                return await self._answer(client, receive, send, log)
            finally:
                self._turns.release()
        finally:
            self.admitted -= 1
            if not self.admitted:
                self._idle.set()

    async def _refill(self) -> None:
        """While no request is being answered, compute server re-randomizers ahead for the keys
        of the last requests, one at a time (so an arriving request finds every worker but at
        most one free, and that one within a single exponentiation)."""
        while True:
            await self._idle.wait()
            public = self.noise.wanted()
            if public is None:
                self._wanted.clear()
                await self._wanted.wait()
                continue
            try:
                value = await self.pool.noise(public)
            except Exception:  # noqa: BLE001 - a pool that is stopping; precomputing is optional
                await asyncio.sleep(1)
                continue
            self.noise.put(public, value)

    async def _answer(self, client, receive, send, log) -> int:
        day = today()
        reserved = delivered = 0
        loop = asyncio.get_running_loop()
        reader = wire.BodyReader(_body(receive), self.settings.max_body_bytes, self.settings.idle_timeout,
                                 loop.time() + self.settings.upload_timeout)
        started = False
        pending: deque = deque()
        watch: list = []  # once the body is read: a task that completes if the client goes away
        try:
            # Header, compatibility, the first batches and the quota: all before the answer starts.
            try:
                doc, jsonl = await self._header(reader)
                batches = reader.batches().__aiter__()
                peek: list = []
                complete = False
                while len(peek) < PEEK_BATCHES:
                    try:
                        raw = await batches.__anext__()
                    except StopAsyncIteration:
                        complete = True
                        break
                    peek.append(doc.parse_batch(raw, len(peek)))
                records = sum(len(b.ids) for b in peek)
                if complete:
                    check_count(reader.declared_records, len(peek), records)
                if records and not await asyncio.to_thread(self.db.reserve, client, records, day):
                    raise _Refused(429, f"daily quota of {client.quota:,} records exceeded; this request "
                                        f"needs {records:,}{'' if complete else ' or more'}",
                                   {"Retry-After": str(seconds_until_tomorrow())})
                reserved = records
            except PpmlError as e:
                raise _Refused(_status_of(e), e.message) from None
            state = server.scoring_state(doc, self.params)
            outputs = len(state[2])
            self.noise.note(doc.public_key)
            self._wanted.set()
            answer = server.predictions_header(doc, self.params)
            media = "application/x-ndjson" if jsonl else JSON_TYPE
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", media.encode()), (b"cache-control", b"no-store")]})
            started = True
            log["bytes_out"] += await self._send(send, streams.header_text(answer.header(), jsonl))
            window = 2 * self.pool.workers

            async def parsed():
                nonlocal reserved
                if complete:
                    watch.append(asyncio.ensure_future(receive()))
                for b in peek:
                    yield b
                if complete:
                    return
                index = len(peek)
                async for raw in batches:
                    batch = doc.parse_batch(raw, index)
                    index += 1
                    need = len(batch.ids)
                    if reserved - delivered - _in_flight(pending) < need:
                        ok = await asyncio.to_thread(self.db.reserve, client, max(need, doc.slots * PEEK_BATCHES), day)
                        if ok:
                            reserved += max(need, doc.slots * PEEK_BATCHES)
                        elif await asyncio.to_thread(self.db.reserve, client, need, day):
                            reserved += need
                        else:
                            raise PpmlError(f"daily quota of {client.quota:,} records reached; the answer "
                                            f"was cut after {delivered + _in_flight(pending):,} records")
                    yield batch
                watch.append(asyncio.ensure_future(receive()))

            index = 0
            total_records = 0
            async for batch in parsed():
                total_records += len(batch.ids)
                noises = self.noise.take(doc.public_key, outputs)
                pending.append((len(batch.ids), asyncio.ensure_future(self.pool.score(state, batch, noises))))
                while len(pending) >= window or pending and pending[0][1].done():
                    index, delivered = await self._deliver(send, pending, answer, jsonl, index, delivered, log, watch)
            while pending:
                index, delivered = await self._deliver(send, pending, answer, jsonl, index, delivered, log, watch)
            check_count(reader.declared_records, index, total_records)
            log["bytes_out"] += await self._send(send, streams.end_text(delivered, index, jsonl), more=False)
            self.metrics.records.inc(delivered)
            self.metrics.batches.inc(index)
            return 200
        except _Refused as r:
            if started:  # cannot happen: refusals come before the answer
                raise
            return await _send_error(send, r, log)
        except (PpmlError, asyncio.TimeoutError) as e:
            message = e.message if isinstance(e, PpmlError) else "the client stopped reading the answer"
            if not started:
                return await _send_error(send, _Refused(_status_of(e), message), log)
            log["error"] = message
            with contextlib.suppress(Exception):
                await self._send(send, b"\n" + files.dump_json({"error": scrub(message)}).encode(), more=False)
            return 200
        finally:
            for _, future in pending:
                future.cancel()
            for task in watch:
                task.cancel()
            log["bytes_in"] = reader.bytes_in
            log["records"] = delivered
            if reserved:
                await asyncio.to_thread(self.db.settle, client, day, reserved, delivered)

    async def _header(self, reader: wire.BodyReader):
        header = await reader.header()
        doc = EncryptedFeatures.parse_header(header, allow_weak=self.settings.allow_weak_key)
        try:
            server.check_compatible(doc, self.params)
        except PpmlError as e:
            raise _Refused(409, e.message) from None
        return doc, reader.jsonl

    async def _deliver(self, send, pending, answer, jsonl, index, delivered, log, watch):
        count, future = pending.popleft()
        batch = await future
        if watch and watch[0].done():  # http.disconnect: nobody is reading any more
            raise _ClientGone()
        log["bytes_out"] += await self._send(send, streams.batch_text(answer.batch_dict(batch), index, jsonl))
        log["batches"] = index + 1
        return index + 1, delivered + count

    async def _send(self, send, data: bytes, more: bool = True) -> int:
        await asyncio.wait_for(send({"type": "http.response.body", "body": data, "more_body": more}),
                               self.settings.idle_timeout)
        return len(data)


def _in_flight(pending) -> int:
    return sum(count for count, _ in pending)


def _bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _peer(scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


async def _body(receive):
    while True:
        message = await receive()
        if message["type"] == "http.request":
            if message.get("body"):
                yield message["body"]
            if not message.get("more_body", False):
                return
        elif message["type"] == "http.disconnect":
            raise _ClientGone()


async def _send_error(send, refused: _Refused, log) -> int:
    body = files.dump_json({"error": refused.message}).encode()
    headers = [(b"content-type", JSON_TYPE.encode()), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    headers += [(k.lower().encode(), v.encode()) for k, v in refused.headers.items()]
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    log["error"] = refused.message
    log["bytes_out"] += len(body)
    return refused.status


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(params: ModelParameters, *, db: ClientDB, settings: Settings | None = None,
               model_dir=None, audit_log=None) -> Starlette:
    """The service for ``params`` (the company's model), its clients in ``db``.

    ``model_dir`` is the trained model folder whose ``col_tnf.pkl`` is published (None: only
    ``Model.json``); ``audit_log`` a file to append JSON Lines to (None: no audit log)."""
    settings = settings or Settings()
    public = PublicModel(params, Path(model_dir) if model_dir is not None else None)
    service = Service(params, db, settings, public, AuditLog(audit_log))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    async def healthz(request: Request):
        if not service.ready:
            return _error(503, "starting or stopping", {"Retry-After": "1"})
        return JSONResponse({"status": "ok", "model_fingerprint": params.spec.fingerprint,
                             "workers": service.pool.workers})

    async def metrics(request: Request):
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def model(request: Request):
        return JSONResponse(public.description(_base(request)))

    async def model_file(request: Request):
        name = request.path_params["name"]
        if name not in public.files:
            return _error(404, "no such public model file; see /v1/model for the list")
        data, _ = public.files[name]
        media = JSON_TYPE if name.endswith(".json") else "application/octet-stream"
        return Response(data, media_type=media,
                        headers={"x-content-sha256": hashlib.sha256(data).hexdigest()})

    async def schema_index(request: Request):
        base = _base(request)
        return JSONResponse({"schemas": {name: f"{base}{API}/schema/{name}" for name in service.schemas}})

    async def schema(request: Request):
        name = request.path_params["name"]
        if name not in service.schemas:
            return _error(404, "no such schema; see /v1/schema/ for the list")
        return Response(service.schemas[name], media_type="application/schema+json")

    async def not_found(request: Request, exc):
        return _error(getattr(exc, "status_code", 404), getattr(exc, "detail", None) or "not found")

    routes = [
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Route(f"{API}/score", _AsgiEndpoint(service.score), methods=["POST"]),
        Route(f"{API}/model", model),
        Route(API + "/model/{name:path}", model_file),
        Route(f"{API}/schema", schema_index),
        Route(f"{API}/schema/", schema_index),
        Route(API + "/schema/{name:path}", schema),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={404: not_found, 405: not_found})
    app.state.service = service
    app.add_middleware(_CountRequests, metrics=service.metrics)
    return app


class _CountRequests:
    """Request counts and durations for the routes other than /v1/score (which counts itself,
    with its own outcome), labelled by a fixed set of paths so that labels stay bounded."""

    PATHS = ("/healthz", "/metrics", f"{API}/model", f"{API}/schema")

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or path == f"{API}/score":
            return await self.app(scope, receive, send)
        label = next((p for p in self.PATHS if path == p or path.startswith(p + "/")), "other")
        status = [500]
        started = time.perf_counter()

        async def counted(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            self.metrics.requests.labels(label, str(status[0])).inc()
            self.metrics.duration.labels(label).observe(time.perf_counter() - started)


class _AsgiEndpoint:
    """A raw ASGI endpoint (Starlette wraps plain functions as request → response)."""

    def __init__(self, handler):
        self.handler = handler

    async def __call__(self, scope, receive, send):
        await self.handler(scope, receive, send)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")
