"""The prediction service as an ASGI app (Starlette): ``create_app(...)``.

Routes:

* ``POST /v1/score`` — a features document in, its predictions document out, streamed batch
  by batch in the layout of the request body. Bearer token required.
* ``GET /v1/model`` — the model's public description; ``GET /v1/model/<file>`` the public files
  (``Model.json``, ``col_tnf.pkl``) — nothing else, whatever the path says.
* ``GET /v1/schema/`` (an index) and ``/v1/schema/<name>.json`` — the JSON Schemas of the
  documents; ``GET /v1/openapi.json`` — the OpenAPI 3.1 description built from them.
* ``GET /healthz``, ``GET /metrics`` (with ``--metrics-token``, only with that bearer token).

Every status is in :data:`ppml.service.describe.STATUSES`; errors are ``{"error": "…"}``. Once an answer has
started (status 200), a failure can only cut it short: the service first delivers every batch
already scored, then ends the answer with a line ``{"error": "…"}`` instead of its end, which
every reader refuses as incomplete.

The body is read by :class:`ppml.streams.DocumentReader` in a thread (see
:mod:`ppml.service.body`) and scored through :class:`ppml.server.ScoreSession`: the same
reader and session as the score stage. Like ``ServerModelRun.py``, nothing here imports
pandas, scikit-learn or numpy.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import hmac
import itertools
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
from ..documents import FEATURES_FORMAT, ModelParameters
from ..errors import DocumentError, KeyMismatchError, PpmlError
from .body import BodyTimeout, BodyTooLarge, ClientGone, RequestBody
from .describe import API, openapi, schema_index
from .clients import ClientDB, seconds_until_tomorrow, today
from .keys import KeyBudgetSpent, KeyChecks
from .observe import AuditLog, Metrics, scrub
from .pool import NoiseReserve, PoolRestarted, ScoringPool

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
    #: Largest customer key scored (bits).
    max_key_bits: int = server.DEFAULT_MAX_KEY_BITS
    #: Requests scored at once (each keeps ``2 × workers`` batches in the pool); default 2 × workers.
    active: int | None = None
    #: Requests that may be read or wait for a turn beyond those; more get 503.
    queue: int = 16
    #: Requests one client may have open at once; more get 503.
    per_client: int = 4
    #: Seconds a request may wait for its turn before 503.
    queue_timeout: float = 30.0
    #: Seconds without a byte from the client (upload) or without progress sending to it.
    idle_timeout: float = 30.0
    #: Seconds an upload may take in all.
    upload_timeout: float = 600.0
    #: New keys a client may have checked at once, then one per ``key_check_seconds``.
    key_checks: int = 8
    key_check_seconds: float = 60.0
    #: Bearer token /metrics requires (None: open).
    metrics_token: str | None = None


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

    def description(self) -> dict:
        """The description; its URLs are absolute paths (no scheme or host: nothing a request
        says, such as its Host header, is reflected)."""
        spec = self.spec.to_dict()
        return {
            "format": "ppml.model-description", "version": 1,
            "model_fingerprint": self.spec.fingerprint,
            "model": spec,
            "files": {name: {"url": f"{API}/model/{name}", "path": path, "bytes": len(data),
                             "sha256": hashlib.sha256(data).hexdigest()}
                      for name, (data, path) in self.files.items()},
            "score": f"{API}/score",
            "schemas": f"{API}/schema/",
        }


class _Refused(Exception):
    """An answer given before the response starts: a status and a message."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def _refusal(error: PpmlError) -> _Refused:
    if isinstance(error, BodyTooLarge):
        return _Refused(413, error.message)
    if isinstance(error, BodyTimeout):
        return _Refused(408, error.message)
    if isinstance(error, KeyBudgetSpent):
        return _Refused(429, error.message, {"Retry-After": str(error.retry_after)})
    if isinstance(error, (KeyMismatchError, server.Incompatible)):
        return _Refused(409, error.message)
    if isinstance(error, PoolRestarted):
        return _busy(error.message)
    return _Refused(400, error.message)


def _busy(message: str = "the service is saturated; retry later") -> _Refused:
    return _Refused(503, message, {"Retry-After": "1"})


class Service:
    """State shared by the routes: model, pool, key checks, clients, metrics, audit log, admission."""

    def __init__(self, params: ModelParameters, db: ClientDB, settings: Settings, public: PublicModel,
                 audit: AuditLog):
        self.params, self.db, self.settings, self.public, self.audit = params, db, settings, public, audit
        self.pool = ScoringPool(settings.workers, settings.scheduler)
        self.keys = KeyChecks(settings.allow_weak_key, settings.key_checks, settings.key_check_seconds)
        self.limits = server.features_limits(params, settings.max_key_bits)
        self.noise = NoiseReserve()
        self.metrics = Metrics()
        self.ready = False
        self.admitted = 0
        self.per_client: dict = {}  # client id → requests open
        self._readers: concurrent.futures.ThreadPoolExecutor | None = None
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
        await self.keys.start()
        self._turns = asyncio.Semaphore(self.active)
        # One reader thread per admitted request: a reader waiting for a slow client blocks
        # only its own thread.
        self._readers = concurrent.futures.ThreadPoolExecutor(self.active + self.settings.queue,
                                                              thread_name_prefix="ppml-reader")
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
        await self.keys.close()
        if self._readers is not None:
            self._readers.shutdown(wait=False, cancel_futures=True)
        self.audit.close()

    async def _read(self, fn, *args):
        """``fn(*args)`` on a reader thread (it may wait for the client's bytes)."""
        return await asyncio.get_running_loop().run_in_executor(self._readers, fn, *args)

    # -- POST /v1/score ------------------------------------------------------------------------
    async def score(self, scope, receive, send) -> None:
        started = time.perf_counter()
        log: dict[str, Any] = dict(client=None, records=0, batches=0, bytes_in=0, bytes_out=0, error=None)
        status = 500
        self.metrics.in_flight.inc()
        try:
            status = await self._score(scope, receive, send, log)
        except ClientGone:
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
                raise _busy("the service is stopping")
            if self.admitted >= self.active + self.settings.queue:
                raise _busy()
            if self.per_client.get(client.id, 0) >= self.settings.per_client:
                raise _busy(f"this client has {self.settings.per_client} requests open already; retry later")
        except _Refused as r:
            return await _send_error(send, r, log)
        self.admitted += 1
        self.per_client[client.id] = self.per_client.get(client.id, 0) + 1
        self._idle.clear()
        try:
            return await self._answer(client, receive, send, log)
        finally:
            self.admitted -= 1
            self.per_client[client.id] -= 1
            if not self.per_client[client.id]:
                del self.per_client[client.id]
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

    async def _open(self, body: RequestBody, client) -> server.ScoreSession:
        """The document's header read and checked: key size, the key's expensive checks (in
        their own process, cached, on the client's budget), the model."""
        reader = await self._read(streams.DocumentReader, body, self.limits, body.name)
        header = reader.header
        server.check_key_bits(header, self.settings.max_key_bits)
        if isinstance(header, dict) and header.get("format") == FEATURES_FORMAT:
            await self.keys.check(client.id, header.get("public_key"))
        return await self._read(lambda: server.ScoreSession(
            reader, self.params, allow_weak=self.settings.allow_weak_key, max_key_bits=self.settings.max_key_bits))

    async def _answer(self, client, receive, send, log) -> int:
        day = today()
        reserved = delivered = 0
        loop = asyncio.get_running_loop()
        body = RequestBody(receive, loop, self.settings.max_body_bytes, self.settings.idle_timeout,
                           loop.time() + self.settings.upload_timeout)
        started = turn = jsonl = False
        pending: deque = deque()
        watch: list = []  # once the body is read: a task that completes if the client goes away
        try:
            # Header, key, model, the first batches and the quota: all before the answer starts.
            try:
                session = await self._open(body, client)
                parsed = session.parsed()
                peek, complete = await self._read(_take, parsed, PEEK_BATCHES)
                records = sum(len(b.ids) for b in peek)
                if records and not await asyncio.to_thread(self.db.reserve, client, records, day):
                    left = await asyncio.to_thread(self.db.left, client, day)
                    raise _Refused(429, f"daily quota of {client.quota:,} records exceeded: {left:,} left today, "
                                        f"this request needs {records:,}{'' if complete else ' or more'}",
                                   {"Retry-After": str(seconds_until_tomorrow())})
                reserved = records
            except PpmlError as e:
                raise _refusal(e) from None
            try:
                await asyncio.wait_for(self._turns.acquire(), self.settings.queue_timeout)
            except asyncio.TimeoutError:
                raise _busy() from None
            turn = True
            doc, answer, jsonl = session.doc, session.answer, session.reader.jsonl
            self.noise.note(doc.public_key)
            self._wanted.set()
            media = "application/x-ndjson" if jsonl else JSON_TYPE
            # The body's layout decides the answer's (Content-Type only has to say JSON).
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", media.encode()), (b"cache-control", b"no-store")]})
            started = True
            log["bytes_out"] += await self._send(send, streams.header_text(answer.header(), jsonl))
            window = 2 * self.pool.workers
            outputs = len(session.state[2])
            index = 0
            failure = None

            async def batches():
                """The peeked batches, then the rest as they are read, each charged first."""
                nonlocal reserved
                for b in peek:
                    yield b
                while not complete:
                    batch = await self._read(next, parsed, None)
                    if batch is None:
                        break
                    need = len(batch.ids)
                    if reserved - delivered - _in_flight(pending) < need:
                        ahead = max(need, doc.slots * PEEK_BATCHES)
                        if await asyncio.to_thread(self.db.reserve, client, ahead, day):
                            reserved += ahead
                        elif await asyncio.to_thread(self.db.reserve, client, need, day):
                            reserved += need
                        else:
                            raise DocumentError(f"daily quota of {client.quota:,} records reached")
                    yield batch
                watch.append(asyncio.ensure_future(receive()))

            try:
                async for batch in batches():
                    noises = self.noise.take(doc.public_key, outputs)
                    scored = asyncio.ensure_future(self.pool.score(session.state, batch, noises))
                    pending.append((len(batch.ids), scored))
                    while len(pending) >= window or pending and pending[0][1].done():
                        index, delivered = await self._deliver(send, pending, answer, jsonl, index, delivered, log,
                                                               watch)
            except PpmlError as e:  # a bad batch or the quota: what was scored before it is still delivered
                failure = e
            while pending:
                index, delivered = await self._deliver(send, pending, answer, jsonl, index, delivered, log, watch)
            if failure is not None:
                raise failure
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
                return await _send_error(send, _refusal(e) if isinstance(e, PpmlError) else _Refused(408, message), log)
            message = f"{message}; the answer was cut after {delivered:,} records"
            log["error"] = message
            with contextlib.suppress(Exception):
                line = files.dump_json({"error": scrub(message)}).encode()  # one line, newline-terminated
                await self._send(send, line if jsonl else b"\n" + line, more=False)
            return 200
        finally:
            body.closed = True
            if turn:
                self._turns.release()
            for _, future in pending:
                future.cancel()
            for task in watch:
                task.cancel()
            log["bytes_in"] = body.bytes_in
            log["records"] = delivered
            if reserved:
                await asyncio.to_thread(self.db.settle, client, day, reserved, delivered)

    async def _deliver(self, send, pending, answer, jsonl, index, delivered, log, watch):
        count, future = pending.popleft()
        batch = await future
        if watch and watch[0].done():  # http.disconnect: nobody is reading any more
            raise ClientGone()
        log["bytes_out"] += await self._send(send, streams.batch_text(answer.batch_dict(batch), index, jsonl))
        log["batches"] = index + 1
        return index + 1, delivered + count

    async def _send(self, send, data: bytes, more: bool = True) -> int:
        await asyncio.wait_for(send({"type": "http.response.body", "body": data, "more_body": more}),
                               self.settings.idle_timeout)
        return len(data)


def _take(iterator, count: int) -> tuple[list, bool]:
    """Up to ``count`` items of ``iterator``, and whether it ended."""
    items = list(itertools.islice(iterator, count))
    return items, len(items) < count


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

        wanted = settings.metrics_token
        given = _bearer(request.headers.get("authorization"))
        if wanted is not None and not (given and hmac.compare_digest(given.encode(), wanted.encode())):
            return _error(401, "/metrics needs its bearer token (Authorization: Bearer TOKEN)",
                          {"WWW-Authenticate": 'Bearer realm="ppml-metrics"'})

        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def model(request: Request):
        return JSONResponse(public.description())

    async def model_file(request: Request):
        name = request.path_params["name"]
        if name not in public.files:
            return _error(404, "no such public model file; see /v1/model for the list")
        data, _ = public.files[name]
        media = JSON_TYPE if name.endswith(".json") else "application/octet-stream"
        return Response(data, media_type=media,
                        headers={"x-content-sha256": hashlib.sha256(data).hexdigest()})

    async def schemas_route(request: Request):
        return JSONResponse(schema_index(service.schemas))

    async def openapi_document(request: Request):
        return JSONResponse(openapi(service.schemas))

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
        Route(f"{API}/schema", schemas_route),
        Route(f"{API}/schema/", schemas_route),
        Route(API + "/schema/{name:path}", schema),
        Route(f"{API}/openapi.json", openapi_document),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={404: not_found, 405: not_found})
    app.state.service = service
    app.add_middleware(_CountRequests, metrics=service.metrics)
    return app


class _CountRequests:
    """Request counts and durations for the routes other than /v1/score (which counts itself,
    with its own outcome), labelled by a fixed set of paths so that labels stay bounded."""

    PATHS = ("/healthz", "/metrics", f"{API}/model", f"{API}/schema", f"{API}/openapi.json")

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

