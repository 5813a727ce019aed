"""A customer client written from docs/protocol.md alone: python-paillier, gmpy2, json and the
standard library, and no ppml import (ppml runs only as commands: ``python -m ppml features``
for the feature vectors, ``ServerModelRun.py`` and ``python -m ppml serve`` as the company, and
one subprocess for the plaintext reference).

It encrypts with a plain python-paillier key (``g = n + 1``, ``r^n``), sends
``h_s = r0^n mod n²`` as the protocol says, and decodes the answers slot by slot. Through both
the script and the service, its predictions equal the plaintext pipeline's within 1e-9
(relative).
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import secrets
import subprocess
import sys
import urllib.error
import urllib.request

import gmpy2
import pytest
from conftest import ROOT, PpmlServer
from phe import paillier

PY = sys.executable
REL_TOLERANCE = 1e-9


# -- the client (docs/protocol.md, sections 2-9) ------------------------------------------------
def key_fingerprint(n: int, h_s: int) -> str:
    """Section 2."""
    return "sha256:" + hashlib.sha256(f"{n:x}:{h_s:x}".encode("ascii")).hexdigest()


def model_fingerprint(model: dict) -> str:
    """Section 3: canonical JSON of the core fields, numbers of the bounds and links as floats."""
    floats = lambda xs: [float(v) for v in xs]  # noqa: E731
    link = model["link"]
    if link["kind"] == "target":
        link = {"kind": "target", "steps": [[op, v if op == "func" else floats(v)] for op, v in link["steps"]]}
    else:
        link = {"kind": "class", "classes": link["classes"], "probability": link["probability"]}
    core = {"features": model["features"], "lower": floats(model["lower"]), "upper": floats(model["upper"]),
            "codec": {k: model["codec"][k] for k in ("feature_bits", "weight_bits", "slot_bits")},
            "outputs": model["outputs"], "link": link,
            "inputs": {k: floats(v) for k, v in model["inputs"].items()},
            "tolerance": float(model.get("tolerance", 0.0))}
    text = json.dumps(core, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class Customer:
    def __init__(self, model: dict, bits: int = 1024):
        self.model = model
        self.public, self.private = paillier.generate_paillier_keypair(n_length=bits)
        n = self.public.n
        while True:  # h_s = r0^n mod n² for a random unit r0: never used, only well-formed
            r0 = secrets.randbelow(n - 2) + 2
            if math.gcd(r0, n) == 1:
                break
        self.h_s = int(gmpy2.powmod(r0, n, n * n))
        self.key = {"format": "ppml.paillier-public-key", "version": 2, "bits": n.bit_length(),
                    "fingerprint": key_fingerprint(n, self.h_s), "n": format(n, "x"), "h_s": format(self.h_s, "x")}
        codec = model["codec"]
        self.fx, self.fw, self.k = codec["feature_bits"], codec["weight_bits"], codec["slot_bits"]
        self.slots = (n.bit_length() - 1) // self.k

    def encode(self, x: list[float]) -> list[int]:
        for v, lo, hi in zip(x, self.model["lower"], self.model["upper"]):
            assert lo <= v <= hi, "outside the declared bounds: must not be sent"
        return [round(math.ldexp(v, self.fx)) for v in x]

    def document(self, ids: list, rows: list[list[float]]) -> tuple[dict, list[dict]]:
        """The header (JSON Lines layout) and the batches of the features document."""
        n = self.public.n
        header = {"format": "ppml.encrypted-features", "version": 1, "key_fingerprint": self.key["fingerprint"],
                  "model_fingerprint": self.model["fingerprint"], "public_key": self.key,
                  "codec": self.model["codec"], "slots": self.slots, "features": self.model["features"]}
        batches = []
        for start in range(0, len(rows), self.slots):
            X = [self.encode(row) for row in rows[start:start + self.slots]]
            packed = [sum(X[j][i] << (self.k * j) for j in range(len(X))) % n for i in range(len(X[0]))]
            batches.append({"ids": ids[start:start + self.slots],
                            "ciphertexts": [format(self.public.raw_encrypt(p), "x") for p in packed]})
        return header, batches

    def decode(self, answer_batches: list[dict]) -> dict:
        """Section 9, for a regression (a target link): record id → its outputs' predictions."""
        delta, mask, scale = 1 << (self.k - 1), (1 << self.k) - 1, self.fx + self.fw
        outputs = len(self.model["outputs"])
        out = {}
        for b in answer_batches:
            assert len(b["ciphertexts"]) == outputs
            values = [self.private.raw_decrypt(int(c, 16)) for c in b["ciphertexts"]]
            for j, rid in enumerate(b["ids"]):
                slots = [(v >> (self.k * j)) & mask for v in values]
                assert all(slots), "invalid slot"
                out[rid] = self.link([(s - delta) / (1 << scale) for s in slots])
        return out

    def link(self, y: list[float]) -> list[float]:
        link = self.model["link"]
        assert link["kind"] == "target"
        for op, values in link["steps"]:
            if op == "func":
                y = [getattr(math, values)(v) for v in y]  # this model's function (exp) is also in math
            else:
                apply = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b,
                         "mul": lambda a, b: a * b, "div": lambda a, b: a / b}[op]
                y = [apply(a, b) for a, b in zip(y, values)]
        return y


def as_json(header: dict, batches: list) -> bytes:
    return json.dumps({**header, "batches": batches, "records": sum(len(b["ids"]) for b in batches)}).encode()


def as_jsonl(header: dict, batches: list) -> bytes:
    lines = [{**header, "layout": "jsonl"}, *batches,
             {"end": True, "records": sum(len(b["ids"]) for b in batches), "batches": len(batches)}]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def read_answer(body: bytes) -> tuple[dict, list]:
    text = body.decode()
    first = json.loads(text.split("\n", 1)[0])
    if first.get("layout") == "jsonl":
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        assert lines[-1].get("end") is True
        return lines[0], lines[1:-1]
    doc = json.loads(text)
    return doc, doc["batches"]


# -- the test -----------------------------------------------------------------------------------
def _run(args, cwd, **kw):
    out = subprocess.run(args, cwd=cwd, capture_output=True, timeout=180, **kw)
    assert out.returncode == 0, out.stderr.decode()
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("protocol")
    records = (ROOT / "Data" / "laptop_data.csv").read_text().splitlines()[:1 + 45]
    (folder / "records.csv").write_text("\n".join(records) + "\n")
    _run([PY, "-m", "ppml", "features", "records.csv", "-o", "X.csv", "--model", str(ROOT), "-q"], folder)
    with open(folder / "X.csv", newline="") as f:
        rows = list(csv.reader(f))
    model = json.loads((ROOT / "Encrypted_ModelParameters" / "Model.json").read_text())
    assert rows[0][1:] == model["features"]
    ids = [int(r[0]) for r in rows[1:]]
    x = [[float(v) for v in r[1:]] for r in rows[1:]]
    reference = json.loads(_run([PY, "-c", (
        "import json, math, pandas as pd\n"
        "from ppml.artifacts import load_pickle\n"
        f"raw = pd.read_csv({str(folder / 'records.csv')!r}, dtype=str, keep_default_na=False)\n"
        f"p = load_pickle({str(ROOT / 'PreProcessingDataAndModel.pkl')!r})\n"
        "print(json.dumps([math.exp(v) for v in p.predict(raw)]))")], folder).stdout)
    customer = Customer(model)
    return dict(folder=folder, model=model, ids=ids, x=x, reference=dict(zip(ids, reference)), customer=customer)


def _assert_exact(got: dict, reference: dict):
    assert set(got) == set(reference)
    assert max(abs(got[i][0] - reference[i]) / reference[i] for i in reference) <= REL_TOLERANCE


def test_the_model_fingerprint_is_reproducible_from_the_spec(setup):
    assert model_fingerprint(setup["model"]) == setup["model"]["fingerprint"]


def test_key_fingerprint_example_of_the_spec():
    assert key_fingerprint(0xAB, 0x0C) == "sha256:" + hashlib.sha256(b"ab:c").hexdigest()


@pytest.mark.slow
def test_through_server_model_run(setup):
    folder, customer = setup["folder"], setup["customer"]
    header, batches = customer.document(setup["ids"], setup["x"])
    (folder / "doc.json").write_bytes(as_json(header, batches))
    _run([PY, str(ROOT / "ServerModelRun.py"), "doc.json", "-o", "answer.json", "--params",
          str(ROOT / "Encrypted_ModelParameters"), "--allow-weak-key", "-q"], folder)
    head, answer = read_answer((folder / "answer.json").read_bytes())
    assert head["key_fingerprint"] == customer.key["fingerprint"]
    assert head["outputs"] == setup["model"]["outputs"]
    _assert_exact(customer.decode(answer), setup["reference"])


@pytest.mark.slow
@pytest.mark.live
def test_through_the_service(setup):
    folder, customer = setup["folder"], setup["customer"]
    token = _run([PY, "-m", "ppml", "clients", "add", "outsider", "--db", "c.db"], folder).stdout.decode().split()[-1]
    server = PpmlServer(folder, "serve", "--model", str(ROOT), "--db", "c.db", "--port", "0", "--workers", "1",
                        "--allow-weak-key")
    url = server.url
    try:
        with urllib.request.urlopen(url + "/v1/model", timeout=30) as r:
            assert json.load(r)["model_fingerprint"] == model_fingerprint(setup["model"])
        header, batches = customer.document(setup["ids"], setup["x"])
        for body, ctype in ((as_jsonl(header, batches), "application/x-ndjson"),
                            (as_json(header, batches), "application/json")):
            request = urllib.request.Request(url + "/v1/score", data=body, method="POST", headers={
                "Authorization": f"Bearer {token}", "Content-Type": ctype})
            try:
                with urllib.request.urlopen(request, timeout=60) as r:
                    head, answer = read_answer(r.read())
            except urllib.error.HTTPError as e:
                raise AssertionError(f"{e.code} {e.read()!r}") from None
            _assert_exact(customer.decode(answer), setup["reference"])
        bad = dict(header, public_key=dict(customer.key, h_s="1"))
        request = urllib.request.Request(url + "/v1/score", data=as_json(bad, batches), method="POST", headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(request, timeout=60)
        assert e.value.code == 400 and "h_s" in json.loads(e.value.read())["error"]
    finally:
        server.stop()

