"""One prediction round trip for the portal, through the same stage layer as the three scripts.

The records go into a private temporary folder as a CSV, then ``stages.encrypt`` (the customer's
key), :func:`ppml.client.score` (the company's service: ciphertexts only) and ``stages.decrypt``
(the customer's own ``Model.json``, and the features document sent: the answer must answer it)
turn them into the predictions CSV that ``CustomerDecrypts.py -o`` writes (text cells
neutralized, see :func:`ppml.stages.csv_field`), which is also the portal's download. Along the way it notes what the company was shown and sent
back — counts, sizes and the first characters of every ciphertext, never a value — and how long
each step took. No web framework here: the portal's app calls :func:`predict`.
"""
from __future__ import annotations

import csv
import io
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import artifacts, client, stages
from ..customer import check_transform
from ..errors import PpmlError
from ..streams import DocumentReader

#: Hexadecimal characters shown of each ciphertext.
HEAD_CHARS = 16
#: Ciphertexts listed one by one in the company view (the rest are counted).
LISTED_CIPHERTEXTS = 64


@dataclass
class Customer:
    """Everything the portal needs to predict: the service, the model the customer holds and
    its key pair (loaded once; the private key never leaves this process)."""

    server: str
    token: str
    spec: object
    col_tnf: object
    keys: stages.CustomerKeys
    http: object = None  # an httpx.Client reused for every request (None: a new one each time)

    @classmethod
    def load(cls, server: str, token: str, model_dir, keys: stages.CustomerKeys, http=None) -> "Customer":
        """The model from ``model_dir`` (``col_tnf.pkl`` and ``Encrypted_ModelParameters/``),
        checked to belong together, and the key pair (created now if the store has none)."""
        spec = artifacts.load_spec(model_dir)
        path = Path(model_dir) / artifacts.COL_TNF
        col_tnf = artifacts.load_customer_transform(path)
        try:
            check_transform(col_tnf, spec)
        except PpmlError as e:
            raise e.with_source(str(path))
        keys.pair()
        return cls(server, token, spec, col_tnf, keys, http)

    @property
    def public_key(self):
        return self.keys.pair()[0]


@dataclass
class Ciphertexts:
    """What one document showed in the clear: its size, records, batches, and per ciphertext
    its size in bytes and first characters."""

    document_bytes: int = 0
    records: int = 0
    batches: int = 0
    count: int = 0
    min_bytes: int = 0
    max_bytes: int = 0
    heads: list = field(default_factory=list)

    @property
    def unlisted(self) -> int:
        return self.count - len(self.heads)


@dataclass
class Prediction:
    """The predictions (``(id, value)`` in input order, ``value`` as the CSV holds it, a float
    when it is a number), the CSV itself, what the company saw and the time of each step."""

    pairs: list
    csv: bytes
    sent: Ciphertexts
    received: Ciphertexts
    key_fingerprint: str
    key_bits: int
    model_fingerprint: str
    steps: list

    @property
    def values(self) -> list:
        return [v for _, v in self.pairs if isinstance(v, float)]

    @property
    def total_seconds(self) -> float:
        return sum(seconds for _, seconds in self.steps)


def records_csv(columns, rows) -> bytes:
    """Records (sequences of text in ``columns`` order) as the CSV the scripts read."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def predict(customer: Customer, records: bytes, source: str) -> Prediction:
    """Encrypt the CSV ``records``, have the service score them and decrypt the answer.

    Args:
        records: a CSV of raw records, as ``CustomerEncrypts.py`` reads it.
        source: the name errors about the records carry (the uploaded file's name, say).
    Raises:
        PpmlError: the scripts' error for the records (with ``source``), the service's
            (:class:`ppml.client.ServiceError`), or the answer's.
    """
    folder = Path(tempfile.mkdtemp(prefix="ppml-portal-"))  # 0700: only this user reads the records
    try:
        steps: list = []
        path = folder / "records.csv"
        path.write_bytes(records)
        try:
            stages.encrypt(str(path), str(folder / "data.json"), spec=customer.spec, col_tnf=customer.col_tnf,
                           keys=customer.keys, watch=stages.TimedWatch(steps, "encrypt: "))
        except PpmlError as e:
            if e.source == str(path):
                e.source = source
            raise
        sent = summarize(folder / "data.json")
        result = client.score(customer.server, str(folder / "data.json"), str(folder / "answer.json"),
                              customer.token, http=customer.http)
        steps.append(("the company's service: upload, score, answer", result.seconds))
        received = summarize(folder / "answer.json")
        stages.decrypt(str(folder / "answer.json"), str(folder / "predictions.csv"), spec=customer.spec,
                       keys=customer.keys, request=str(folder / "data.json"),
                       watch=stages.TimedWatch(steps, "decrypt: "))
        data = (folder / "predictions.csv").read_bytes()
        public = customer.public_key
        return Prediction(read_predictions(data, customer.spec.columns[0]), data, sent, received,
                          public.fingerprint, public.bits,
                          customer.spec.fingerprint, steps)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def prediction_label(spec) -> str:
    """What the page's prediction is called: the model's (first) output, or ``class``."""
    from ..links import ClassLink

    return "class" if isinstance(spec.link, ClassLink) else spec.outputs[0]


def read_predictions(data: bytes, column: str = "prediction") -> list:
    """``(id, prediction)`` pairs of a predictions CSV (the prediction from ``column``: the
    first after ``id``), the prediction a float when it is one."""
    pairs = []
    for row in csv.DictReader(io.StringIO(data.decode("utf-8"))):
        value = row.get(column, "")
        try:
            value = float(value)
        except ValueError:
            pass
        pairs.append((row.get("id", ""), value))
    return pairs


def summarize(path: Path) -> Ciphertexts:
    """Sizes and first characters of the ciphertexts of a features or predictions document,
    read batch by batch."""
    seen = Ciphertexts(document_bytes=path.stat().st_size)
    reader = DocumentReader(path)
    sizes = []
    for batch in reader.batches():
        seen.batches += 1
        seen.records += len(batch.get("ids", ()))
        texts = batch.get("ciphertexts") or [batch.get("ciphertext", "")]
        for text in texts:
            sizes.append((len(text) + 1) // 2)
            if len(seen.heads) < LISTED_CIPHERTEXTS:
                seen.heads.append(text[:HEAD_CHARS])
    seen.count = len(sizes)
    seen.min_bytes, seen.max_bytes = (min(sizes), max(sizes)) if sizes else (0, 0)
    return seen
