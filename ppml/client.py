"""The customer's side of the prediction service: score a document, set up from the public model.

Library functions (no click): ``python -m ppml request`` and ``fetch-model`` call them, and so
can any Python program, e.g. a web portal::

    from ppml import client
    token = client.read_token("token.txt")                      # or $PPML_TOKEN
    result = client.score("https://host:8443", "Encrypted_Data/data.json",
                          "Encrypted_Predicted_value/answer.json", token)
    client.fetch_model("https://host:8443", "model/")            # col_tnf.pkl + Model.json

Every failure is a :class:`~ppml.errors.PpmlError` whose ``exit_code`` follows the scripts'
convention (3 for a document the service calls malformed or too large, 4 for another model or
codec, 1 for the rest), with the service's own message.

Uploads and answers stream: the document goes up in chunks as it is read and the answer lands
in the output's temporary file (or a spool for stdout) as it arrives, so memory stays flat; it
is released only once it is complete and answers the document sent (same key, model, ids
batch by batch and record count), else refused with exit status 4. A 503 (saturated) or a connection failure before
any answer arrived is retried with exponential backoff; the document is then sent again from
its start (from a spool file if it came from a pipe).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from collections.abc import Callable, Iterator

from . import files
from .errors import DocumentError, KeyMismatchError, OutputError, PpmlError

TOKEN_ENV = "PPML_TOKEN"
DEFAULT_RETRIES = 5
DEFAULT_TIMEOUT = 60.0
CHUNK = 1 << 16
MODEL_DESCRIPTION = "ppml.model-description"
#: What ``fetch-model`` writes, by published file name: the layout ``CustomerEncrypts.py
#: --model DIR`` reads. Fixed here, never taken from the server.
MODEL_FILES = {"Model.json": "Encrypted_ModelParameters/Model.json", "col_tnf.pkl": "col_tnf.pkl"}


class ServiceError(PpmlError):
    """The service answered with an error status, or could not be reached.

    Attributes:
        status: the HTTP status (None if there was no answer).
    """

    def __init__(self, message: str, source: str | None = None, status: int | None = None):
        super().__init__(message, source)
        self.status = status
        self.exit_code = {400: DocumentError.exit_code, 408: DocumentError.exit_code,
                          413: DocumentError.exit_code, 415: DocumentError.exit_code,
                          409: KeyMismatchError.exit_code}.get(status, PpmlError.exit_code)


@dataclass
class ScoreResult:
    """What one ``score`` call moved."""

    bytes_sent: int
    bytes_received: int
    seconds: float
    attempts: int


def read_token(token_file=None, environ=None) -> str:
    """The bearer token: from ``token_file`` (which nobody but its owner may read, as for a
    private key), else from ``$PPML_TOKEN``."""
    environ = os.environ if environ is None else environ
    if token_file is not None:
        path = str(token_file)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise PpmlError("token file not found", path) from None
        except OSError as e:
            raise PpmlError(f"cannot read: {e.strerror}", path) from None
        files.refuse_open_permissions(path, st.st_mode, "a token file")
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise PpmlError(f"cannot read: {getattr(e, 'strerror', None) or e}", path) from None
        if not token or len(token.split()) != 1:
            raise PpmlError("must hold one token on one line", path)
        return token
    token = (environ.get(TOKEN_ENV) or "").strip()
    if not token:
        raise PpmlError(f"no token: pass --token-file FILE or set {TOKEN_ENV}")
    return token


def http_client(timeout: float = DEFAULT_TIMEOUT, verify=True, url: str | None = None):
    """An ``httpx.Client`` set up as :func:`score` and :func:`fetch_model` use it. Pass one to
    them (``http=``) to reuse connections across many calls, as a portal would. For a plain
    ``http://`` ``url`` no certificate store is loaded (that alone costs tens of milliseconds)."""
    if url is not None and url.startswith("http://"):
        verify = False
    return _http(timeout, verify)


def _http(timeout: float, verify):
    try:
        import httpx
    except ImportError:
        raise PpmlError("talking to the service needs httpx: pip install 'ppml[serve]'") from None
    import socket

    # TCP_NODELAY: the body follows the headers in separate writes, and Nagle's algorithm would
    # hold it back until the server's delayed ACK (about 40 ms a request).
    transport = httpx.HTTPTransport(verify=verify, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    return httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)), transport=transport,
                        follow_redirects=False)


def _base(url: str) -> str:
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise PpmlError(f"{url!r} is not an http:// or https:// URL")
    return url


#: Hosts already warned about in this process (the warning is given once per host).
_WARNED: set = set()


def plain_http_warning(url: str, what: str = "the bearer token") -> str | None:
    """Warn once per host, on one stderr line, before ``what`` goes over plain ``http://`` to a
    host that is not this machine (anyone on the path could read or change it). Returns the
    warning given, if any."""
    import ipaddress
    from urllib.parse import urlsplit

    if not url.startswith("http://"):
        return None
    host = (urlsplit(url).hostname or "").lower()
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost" or host.endswith(".localhost")
    if loopback or host in _WARNED:
        return None
    _WARNED.add(host)
    message = (f"Warning: sending {what} to {host} over plain http://: anyone on the network path can read "
               "and alter it; use https://")
    print(message, file=sys.stderr, flush=True)
    return message


# -- the upload ---------------------------------------------------------------------------------
class _Upload:
    """A document to send, possibly more than once: a file is reopened, a pipe is spooled to a
    temporary file as it is read, so a retry can replay it."""

    def __init__(self, source):
        self.path = None
        self.data = None
        self.stream: BinaryIO | None = None
        self.spool = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            self.data = bytes(source)
        elif isinstance(source, (str, Path)) and str(source) != files.STDIO:
            self.path = Path(source)
            if not self.path.exists():
                raise DocumentError("file not found", str(source))
            if self.path.is_dir():
                raise DocumentError("is a folder, expected a file", str(source))
        else:
            self.stream = sys.stdin.buffer if str(source) == files.STDIO else source
            self.spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)
        self.name = "<stdin>" if str(source) == files.STDIO else (str(source) if self.path else "document")
        self.sent = 0

    @property
    def length(self) -> int | None:
        if self.data is not None:
            return len(self.data)
        if self.path is not None:
            return self.path.stat().st_size
        return None

    def head(self, size: int = CHUNK) -> bytes:
        """The first bytes, without losing them for the upload."""
        if self.data is not None:
            return self.data[:size]
        if self.path is not None:
            with open(self.path, "rb") as f:
                return f.read(size)
        while self.spool.tell() < size:
            chunk = self.stream.read(CHUNK)
            if not chunk:
                break
            self.spool.write(chunk)
        self.spool.seek(0)
        head = self.spool.read(size)
        self.spool.seek(0, io.SEEK_END)
        return head

    def chunks(self, progress: Callable | None = None) -> Iterator[bytes]:
        self.sent = 0
        for chunk in self._chunks():
            self.sent += len(chunk)
            if progress is not None:
                progress(self.sent, None)
            yield chunk

    def _chunks(self) -> Iterator[bytes]:
        if self.data is not None:
            for i in range(0, len(self.data), CHUNK):
                yield self.data[i:i + CHUNK]
            return
        if self.path is not None:
            try:
                with open(self.path, "rb") as f:
                    while chunk := f.read(CHUNK):
                        yield chunk
            except OSError as e:
                raise DocumentError(f"cannot read: {e.strerror}", str(self.path)) from None
            return
        end = self.spool.tell()
        self.spool.seek(0)
        while self.spool.tell() < end:
            yield self.spool.read(min(CHUNK, end - self.spool.tell()))
        while chunk := self.stream.read(CHUNK):
            self.spool.write(chunk)
            yield chunk

    def replay(self):
        """The whole document again, from its start (a path, or a stream), to check the answer
        against (a pipe is first read to its end)."""
        if self.data is not None:
            return io.BytesIO(self.data)
        if self.path is not None:
            return self.path
        self.spool.seek(0, io.SEEK_END)
        while chunk := self.stream.read(CHUNK):
            self.spool.write(chunk)
        self.spool.seek(0)
        return self.spool

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()


def content_type(head: bytes) -> str:
    """``application/x-ndjson`` for a JSON Lines document (its first line is a header with
    ``"layout": "jsonl"``), else ``application/json``."""
    from .streams import jsonl_header

    first = head.lstrip().split(b"\n", 1)
    if len(first) == 2:
        try:
            if jsonl_header(first[0] + b"\n", "document") is not None:
                return "application/x-ndjson"
        except PpmlError:
            pass  # not JSON: the service says what is wrong with it
    return "application/json"


class _Sink:
    """Where the answer goes: a file (appears atomically), stdout (``-``) or a binary file
    object — in every case only once the answer is complete and answers the request (until
    then stdout's and a file object's bytes wait in a temporary file)."""

    def __init__(self, output):
        self.atomic: files.AtomicFile | None = None
        self.out: BinaryIO | None = None
        if isinstance(output, (str, Path)) and str(output) != files.STDIO:
            self.atomic = files.AtomicFile(output)
        else:
            self.out = sys.stdout.buffer if str(output) == files.STDIO else output
            self.held = tempfile.SpooledTemporaryFile(max_size=8 << 20)
        self.written = 0
        self.tail = b""

    def write(self, data: bytes) -> None:
        (self.atomic or self.held).write(data)
        self.written += len(data)
        self.tail = (self.tail + data)[-(CHUNK):]

    def check_complete(self, url: str) -> None:
        """The answer ended as a document ends, not with the service's error line or mid-way."""
        lines = [line for line in self.tail.splitlines() if line.strip()]
        last = lines[-1].strip() if lines else b""
        try:
            final = json.loads(last)
        except ValueError:
            final = None
        if isinstance(final, dict) and set(final) == {"error"}:
            raise ServiceError(f"the answer was cut short: {final['error']}", url)
        if isinstance(final, dict) and (final.get("end") is True or "batches" in final):
            return
        if not last.endswith(b"}"):
            raise ServiceError("the answer was cut short (connection lost)", url)

    def answer(self):
        """The answer received so far, from its start: a path or a stream."""
        if self.atomic is not None:
            self.atomic.file.flush()
            return self.atomic.tmp
        self.held.seek(0)
        return self.held

    def commit(self) -> None:
        if self.atomic is not None:
            self.atomic.commit()
            return
        self.held.seek(0)
        while chunk := self.held.read(CHUNK):
            self.out.write(chunk)
        self.out.flush()
        self.held.close()

    def abort(self) -> None:
        if self.atomic is not None:
            self.atomic.abort()
        else:
            self.held.close()


def _error_message(response) -> str:
    try:
        body = json.loads(response.read()[:65536])
        message = body.get("error") if isinstance(body, dict) else None
    except (ValueError, UnicodeDecodeError):
        message = None
    return f"{response.status_code} {message or response.reason_phrase}"


def _retry_after(response, attempt: int, backoff: float) -> float:
    value = response.headers.get("retry-after", "") if response is not None else ""
    delay = float(value) if value.isdigit() else backoff * 2 ** attempt
    return min(delay, 30.0)


def score(url: str, source, output, token: str, *, retries: int = DEFAULT_RETRIES,
          timeout: float = DEFAULT_TIMEOUT, verify=True, backoff: float = 0.5,
          progress: Callable[[int, int | None], None] | None = None, http=None) -> ScoreResult:
    """Send the features document ``source`` to the service at ``url`` and write its
    predictions document to ``output``.

    Args:
        url: the service's base URL (``http://host:8000``); ``/v1/score`` is added.
        source: a path, ``-`` for stdin, bytes, or a binary file object (read once; spooled
            for retries).
        output: a path (written atomically), ``-`` for stdout, or a binary file object; in
            every case written only once the whole answer has arrived and answers ``source``
            (its key, model, ids batch by batch and record count).
        token: the client's bearer token (see :func:`read_token`).
        retries: how many times a 503 or a connection failure is retried.
        timeout: seconds without progress before giving up.
        verify: TLS verification: True, False, or a CA bundle path.
        progress: called as ``progress(bytes_sent, bytes_received)`` while data moves.
        http: an ``httpx.Client`` to use (e.g. Starlette's ``TestClient``); default a new one.
    Returns:
        a :class:`ScoreResult`.
    Raises:
        ServiceError: the service refused the document or failed; DocumentError: the source
        cannot be read; AnswerMismatchError: the answer does not answer the source;
        OutputError: the output cannot be written.
    """
    endpoint = _base(url) + "/v1/score"
    plain_http_warning(url)
    upload = _Upload(source)
    own = http is None
    http = http or http_client(timeout, verify, url)
    started = time.perf_counter()
    import httpx

    try:
        headers = {"authorization": f"Bearer {token}", "content-type": content_type(upload.head()),
                   "accept": "application/json, application/x-ndjson"}
        if upload.length is not None:
            headers["content-length"] = str(upload.length)
        attempt = 0
        while True:
            sink = None
            try:
                with http.stream("POST", endpoint, content=upload.chunks(progress), headers=headers) as response:
                    if response.status_code == 503 and attempt < retries:
                        delay = _retry_after(response, attempt, backoff)
                        response.read()
                        attempt += 1
                        time.sleep(delay)
                        continue
                    if response.status_code != 200:
                        raise ServiceError(_error_message(response), endpoint, response.status_code)
                    sink = _Sink(output)
                    for chunk in response.iter_bytes(CHUNK):
                        sink.write(chunk)
                        if progress is not None:
                            progress(upload.sent, sink.written)
                    sink.check_complete(endpoint)
                    _check_answer(upload, sink, endpoint)
                    sink.commit()
                    return ScoreResult(upload.sent, sink.written, time.perf_counter() - started, attempt + 1)
            except httpx.TransportError as e:
                if sink is not None:
                    sink.abort()
                    if sink.written:  # the service has scored (and counted) it: not sent again
                        raise ServiceError(f"the answer was cut short: {_describe(e)}", endpoint) from None
                if attempt >= retries:
                    raise ServiceError(f"cannot reach the service: {_describe(e)}", endpoint) from None
                time.sleep(min(backoff * 2 ** attempt, 30.0))
                attempt += 1
            except BaseException:
                if sink is not None:
                    sink.abort()
                raise
    finally:
        upload.close()
        if own:
            http.close()


def _check_answer(upload: _Upload, sink: _Sink, endpoint: str) -> None:
    """Refuse (exit 4) an answer that does not answer the document sent: another key, model or
    packing, other ids in any batch, other batch sizes or another record count (see
    :class:`ppml.customer.SentRequest`)."""
    from .customer import SentRequest, check_answer_document

    check_answer_document(SentRequest(upload.replay(), name=upload.name), sink.answer(), endpoint)


def _describe(error) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _get(http, url: str):
    import httpx

    try:
        response = http.get(url)
    except httpx.TransportError as e:
        raise ServiceError(f"cannot reach the service: {_describe(e)}", url) from None
    if response.status_code != 200:
        raise ServiceError(_error_message(response), url, response.status_code)
    return response


def model_description(url: str, *, timeout: float = DEFAULT_TIMEOUT, verify=True, http=None) -> dict:
    """``GET /v1/model``: the model's public description (``Model.json``, its fingerprint and
    the files a customer downloads)."""
    own = http is None
    http = http or http_client(timeout, verify, url)
    endpoint = _base(url) + "/v1/model"
    try:
        response = _get(http, endpoint)
        try:
            desc = response.json()
        except ValueError:
            raise ServiceError("the model description is not JSON", endpoint) from None
        if not isinstance(desc, dict) or desc.get("format") != MODEL_DESCRIPTION:
            raise ServiceError(f"not a {MODEL_DESCRIPTION} document (is this a ppml service?)", endpoint)
        return desc
    finally:
        if own:
            http.close()


def fetch_model(url: str, out_dir, *, force: bool = False, timeout: float = DEFAULT_TIMEOUT, verify=True,
                http=None) -> list[Path]:
    """Download the service's public model files into ``out_dir`` so that ``CustomerEncrypts.py
    --model out_dir`` works: ``Encrypted_ModelParameters/Model.json`` and ``col_tnf.pkl``.

    Checked before anything is written: each file's SHA-256 against the description, the
    model fingerprint against ``Model.json``'s content, and ``col_tnf.pkl`` read as plain data
    (:func:`ppml.artifacts.read_customer_transform`) and matched to the model's features. A file that exists with other
    content is replaced only with ``force``. Returns the paths written."""
    from .documents import ModelSpec

    own = http is None
    base = _base(url)
    plain_http_warning(url, "requests for the model files (and to trust the answers)")
    http = http or http_client(timeout, verify, url)
    out = Path(out_dir)
    try:
        desc = model_description(base, http=http)
        published = desc.get("files") if isinstance(desc.get("files"), dict) else {}
        if "Model.json" not in published:
            raise ServiceError("the service publishes no Model.json", base + "/v1/model")
        contents = {}  # files this client does not know are not fetched
        for name in [n for n in MODEL_FILES if n in published]:
            file_url = f"{base}/v1/model/{name}"
            data = _get(http, file_url).content
            expected = (published[name] or {}).get("sha256") if isinstance(published[name], dict) else None
            if hashlib.sha256(data).hexdigest() != expected:
                raise ServiceError("content does not match the SHA-256 the model description gives", file_url)
            contents[name] = data
        try:
            spec = ModelSpec.from_dict(files.parse_json(contents["Model.json"], "Model.json"))
        except PpmlError as e:
            raise ServiceError(f"Model.json: {e.message}", f"{base}/v1/model/Model.json") from None
        if spec.fingerprint != desc.get("model_fingerprint"):
            raise ServiceError("Model.json's fingerprint differs from the one the service announces", base)
        if "col_tnf.pkl" in contents:
            _check_transformer(contents["col_tnf.pkl"], spec, f"{base}/v1/model/col_tnf.pkl")
        written = []
        for name, data in contents.items():
            path = out / MODEL_FILES[name]
            if path.exists() and not force and path.read_bytes() != data:
                raise OutputError("exists with other content; refusing to replace it (use --force)", str(path))
        for name, data in contents.items():
            path = out / MODEL_FILES[name]
            if not (path.exists() and path.read_bytes() == data):
                files.atomic_write_bytes(path, data)
            written.append(path)
        return written
    finally:
        if own:
            http.close()


def _check_transformer(data: bytes, spec, source: str) -> None:
    """Read the downloaded transformer the way the customer will, before keeping it."""
    from . import artifacts
    from .customer import check_transform

    try:
        check_transform(artifacts.read_customer_transform(data), spec)
    except PpmlError as e:
        raise ServiceError(f"col_tnf.pkl: {e.message}", source) from None
