"""The customer's portal as an ASGI app (Starlette, Jinja2 templates): ``create_app(customer, ...)``.

Routes:

* ``GET /`` — the form (one field per raw input column, pre-filled) and the CSV upload.
* ``POST /predict`` — one record from the form: the page again, with ``#prediction`` and
  ``#company-view``; on invalid input, the scripts' one-line reason next to the form, with the
  entered values kept.
* ``POST /batch`` — a CSV of records: ``#results`` (one row per record), ``#download`` (the
  predictions CSV, as ``CustomerDecrypts.py -o`` writes it, at ``GET /download/<key>``) and a
  histogram drawn as inline SVG.
* ``GET /static/…`` and ``/favicon.ico`` — the stylesheet and icon: the page loads nothing
  from anywhere else, and needs no script.

It runs on the customer's machine and holds the customer's private key, so it answers only to
a loopback ``Host`` (a web page the person visits cannot reach it through DNS rebinding), and
every form carries a CSRF token (an HMAC of a random cookie under a secret of this process), so
no other site can make it spend the customer's quota. Work runs in a thread, through
:func:`ppml.portal.predict.predict`.
"""
from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
import io
import logging
import re
import secrets
from collections import OrderedDict
from pathlib import Path

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ..errors import FeatureParseError, PpmlError
from ..display import readable
from . import predict as work
from .form import form_fields
from .histogram import histogram

HERE = Path(__file__).parent
#: Host names the portal answers to besides the one it listens on: loopback only.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
#: The largest form post and the largest CSV upload accepted (Content-Length, checked first).
MAX_FORM_BYTES = 64 << 10
MAX_UPLOAD_BYTES = 16 << 20
#: Predictions CSVs kept for download (the most recent ones).
KEPT_DOWNLOADS = 16
#: Rows of a batch shown on the page (the download holds them all).
MAX_TABLE_ROWS = 5000
CSRF_COOKIE = "ppml_portal_csrf"
CSRF_FIELD = "csrftoken"
UPLOAD_FIELD = "records"
_COOKIE_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
_SAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._ -]+")
#: Nothing but the portal itself: no script at all, styles and images from here only.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",  # not "no-referrer": that makes a form post's Origin "null"
    "cache-control": "no-store",
}

log = logging.getLogger("ppml.portal")


def host_name(value: str) -> str:
    """The name part of a ``Host`` header: ``[::1]:8501`` → ``::1``, ``LocalHost:80`` → ``localhost``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class HostCheck:
    """Refuse any request whose ``Host`` is not one of ``allowed`` (DNS rebinding)."""

    def __init__(self, app, allowed):
        self.app, self.allowed = app, frozenset(h.lower() for h in allowed)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            host = dict(scope.get("headers") or ()).get(b"host", b"").decode("latin-1")
            if host_name(host) not in self.allowed:
                response = PlainTextResponse(f"Error: this portal answers only to {', '.join(sorted(self.allowed))}, "
                                             "not to the host this request names\n", status_code=400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Portal:
    """The routes' shared state: the customer, the form, the CSRF secret, recent downloads."""

    def __init__(self, customer: work.Customer):
        self.customer = customer
        self.fields = form_fields(customer.col_tnf)
        self.defaults = {f.name: f.default for f in self.fields}
        self.secret = secrets.token_bytes(32)
        self.downloads: OrderedDict = OrderedDict()
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.filters["readable"] = self.show
        self.templates.env.filters["thousands"] = lambda n: f"{n:,}"
        self.templates.env.filters["ms"] = lambda s: f"{s * 1000:,.1f} ms"

    def show(self, value) -> str:
        """A prediction as ``CustomerDecrypts.py`` prints it (text, for a non-numeric one)."""
        return readable(value) if isinstance(value, float) else str(value)

    # -- pages ------------------------------------------------------------------------------
    def page(self, request: Request, status: int = 200, **context) -> Response:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        fresh = not _COOKIE_RE.match(cookie)
        if fresh:
            cookie = secrets.token_urlsafe(32)
        spec, public = self.customer.spec, self.customer.public_key
        context = {"fields": self.fields, "values": self.defaults, "csrf_field": CSRF_FIELD,
                   "csrf_token": self.csrf_token(cookie), "upload_field": UPLOAD_FIELD, "server": self.customer.server,
                   "target": work.prediction_label(spec), "model_fingerprint": spec.fingerprint,
                   "key_fingerprint": public.fingerprint, "key_bits": public.bits,
                   "max_upload_mb": MAX_UPLOAD_BYTES >> 20, **context}
        response = self.templates.TemplateResponse(request, "index.html", context, status_code=status,
                                                   headers=SECURITY_HEADERS)
        if fresh:
            response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="strict", path="/")
        return response

    async def index(self, request: Request) -> Response:
        return self.page(request)

    async def predict(self, request: Request) -> Response:
        refused = await self.refuse(request, MAX_FORM_BYTES, "the form", "one")
        if refused:
            return refused
        form = await request.form(max_files=0, max_fields=len(self.fields) + 4, max_part_size=MAX_FORM_BYTES)
        if not self.csrf_ok(request, form):
            return self.forbidden(request, "one")
        values = {f.name: str(form.get(f.name, "")) for f in self.fields}
        data = work.records_csv([f.name for f in self.fields], [[values[f.name] for f in self.fields]])
        try:
            result = await asyncio.to_thread(work.predict, self.customer, data, None)
        except Exception as e:  # noqa: BLE001 - shown as the scripts show it
            return self.page(request, values=values, error=self.error_line(e), error_form="one",
                             error_field=getattr(e, "column", None) if isinstance(e, FeatureParseError) else None)
        return self.page(request, values=values, single=result, value=result.pairs[0][1])

    async def batch(self, request: Request) -> Response:
        refused = await self.refuse(request, MAX_UPLOAD_BYTES, "the file", "batch")
        if refused:
            return refused
        form = await request.form(max_files=1, max_fields=4, max_part_size=MAX_FORM_BYTES)
        try:
            if not self.csrf_ok(request, form):
                return self.forbidden(request, "batch")
            upload = form.get(UPLOAD_FIELD)
            if not isinstance(upload, UploadFile) or not upload.filename:
                return self.page(request, error="Error: choose a CSV file of records first", error_form="batch")
            name = safe_name(upload.filename)
            data = await upload.read()
        finally:
            await form.close()
        try:
            result = await asyncio.to_thread(work.predict, self.customer, data, name)
        except Exception as e:  # noqa: BLE001 - shown as the scripts show it
            return self.page(request, error=self.error_line(e), error_form="batch")
        key = secrets.token_urlsafe(18)
        self.downloads[key] = (Path(name).stem + "-predictions.csv", result.csv)
        while len(self.downloads) > KEPT_DOWNLOADS:
            self.downloads.popitem(last=False)
        columns, rows = self.table(data, result.pairs)
        return self.page(request, batch=result, filename=name, columns=columns, rows=rows[:MAX_TABLE_ROWS],
                         hidden_rows=max(0, len(rows) - MAX_TABLE_ROWS), download=f"/download/{key}",
                         chart=histogram(result.values))

    async def download(self, request: Request) -> Response:
        found = self.downloads.get(request.path_params["key"])
        if found is None:
            return PlainTextResponse("Error: this download has expired; upload the file again\n", status_code=404,
                                     headers=SECURITY_HEADERS)
        filename, data = found
        return Response(data, media_type="text/csv; charset=utf-8",
                        headers={**SECURITY_HEADERS, "content-disposition": f'attachment; filename="{filename}"'})

    # -- helpers ----------------------------------------------------------------------------
    def table(self, data: bytes, pairs: list) -> tuple[list, list]:
        """Columns and rows of the results table: id, the model's input columns as uploaded,
        the prediction last."""
        inputs = [f.name for f in self.fields]
        try:
            records = [[row.get(c) or "" for c in inputs]
                       for row in csv.DictReader(io.StringIO(data.decode("utf-8-sig")))]
        except (UnicodeDecodeError, csv.Error):
            records = []
        if len(records) != len(pairs):  # the CSV reader and pandas disagree on some odd file: ids only
            inputs, records = [], [[] for _ in pairs]
        return ["id", *inputs, work.prediction_label(self.customer.spec)], [
            [str(rid), *record, value] for (rid, value), record in zip(pairs, records)]

    def error_line(self, error: Exception) -> str:
        if isinstance(error, PpmlError):
            return f"Error: {error}"
        log.exception("the portal failed")
        return f"Error: internal error: {type(error).__name__}: {error}"

    def csrf_token(self, cookie: str) -> str:
        return hmac.new(self.secret, cookie.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, request: Request, form) -> bool:
        cookie, token = request.cookies.get(CSRF_COOKIE, ""), form.get(CSRF_FIELD)
        return (bool(_COOKIE_RE.match(cookie)) and isinstance(token, str)
                and hmac.compare_digest(token, self.csrf_token(cookie)) and same_origin(request))

    async def refuse(self, request: Request, limit: int, what: str, form: str) -> Response | None:
        """A refusal page before the body is read: another site's post, or a body too large."""
        if not same_origin(request):
            return self.forbidden(request, form)
        length = request.headers.get("content-length", "")
        if not length.isdigit():
            return self.page(request, 411, error_form=form,
                             error="Error: the browser sent no Content-Length; send the form again")
        if int(length) > limit:
            return self.page(request, 413, error_form=form,
                             error=f"Error: {what} is larger than the portal's limit of {limit / 2 ** 20:g} MiB; "
                                   "for large files use CustomerEncrypts.py, `python -m ppml request` and "
                                   "CustomerDecrypts.py")
        return None

    def forbidden(self, request: Request, form: str) -> Response:
        return self.page(request, 403, error_form=form,
                         error="Error: this form was not sent from this page, or has expired; send it again "
                               "from this page")


def same_origin(request: Request) -> bool:
    """Not a post from another site: the browser's ``Sec-Fetch-Site`` and ``Origin`` say so
    when they are sent."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


def safe_name(filename: str) -> str:
    """An uploaded file's base name, safe to show and to offer back."""
    name = _SAFE_NAME_RE.sub("_", Path(filename.replace("\\", "/")).name).strip(" .") or "records.csv"
    return name[:100]


def create_app(customer: work.Customer, *, hosts=()) -> Starlette:
    """The portal for ``customer``, answering to ``hosts`` and the loopback names.

    Args:
        hosts: host names the portal listens on besides the loopback names.
    """
    portal = Portal(customer)
    routes = [
        Route("/", portal.index, methods=["GET"]),
        Route("/predict", portal.predict, methods=["POST"]),
        Route("/batch", portal.batch, methods=["POST"]),
        Route("/download/{key}", portal.download, methods=["GET"]),
        Route("/favicon.ico", lambda request: FileResponse(HERE / "static" / "favicon.svg",
                                                           media_type="image/svg+xml")),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.portal = portal
    app.add_middleware(HostCheck, allowed=[*LOOPBACK_NAMES, *hosts])
    return app
