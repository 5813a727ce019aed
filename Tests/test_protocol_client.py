"""A customer client written from docs/protocol.md alone: python-paillier, gmpy2, json and the
standard library, and no ppml import (ppml runs only as commands: ``python -m ppml features``
for the feature vectors, ``ServerModelRun.py`` and ``python -m ppml serve`` as the company, and
one subprocess for the plaintext reference).

It computes the feature vectors itself from ``col_tnf.pkl`` (section 4: a pickle of plain data,
read with an unpickler that admits no global, and the documented parsers re-implemented here),
equal to ``python -m ppml features`` on every record of the laptop files. It encrypts with a
plain python-paillier key (``g = n + 1``, ``r^n``; drawn again until both primes are ≡ 3 mod 4,
as section 2 requires), proves its modulus from ``p`` and ``q`` as section 2 says, sends
``h_s = r0^n mod n²``, and decodes the answers slot by slot. Through both the script and the
service, its predictions equal the plaintext pipeline's within 1e-9 (relative).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import pickle
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import gmpy2
import pytest
from phe import paillier

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
REL_TOLERANCE = 1e-9
#: The public laptop data set, beside this checkout or beside its folder of worktrees.
PUBLIC_LAPTOPS = [p for p in (ROOT.parent / "shared" / "data" / "laptop_data.csv",
                              ROOT.parent.parent / "shared" / "data" / "laptop_data.csv") if p.exists()][:1]


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


def proof_challenge(label: str, n: int, h_s: int, i: int, w: int | None = None) -> int:
    """Section 2: SHA-256 in counter mode over the text "ppml-modulus-proof-v1:<label>:…:<i>:<j>"."""
    parts = ["ppml-modulus-proof-v1", label, f"{n:x}", f"{h_s:x}", *([f"{w:x}"] if w is not None else []), str(i)]
    seed = ":".join(parts)
    size = (n.bit_length() + 128 + 7) // 8
    stream = b"".join(hashlib.sha256(f"{seed}:{j}".encode("ascii")).digest() for j in range(-(-size // 32)))
    return int.from_bytes(stream[:size], "big") % n


def modulus_proof(p: int, q: int, h_s: int) -> dict:
    """Section 2: 8 n-th roots and 128 fourth roots, from the factors alone."""
    n = p * q

    def crt(a: int, b: int) -> int:
        return (b + (a - b) * pow(q, -1, p) % p * q) % n

    def is_square(v: int, r: int) -> bool:
        return pow(v, (r - 1) // 2, r) == 1

    nth = []
    for i in range(8):
        rho = proof_challenge("nth-root", n, h_s, i)
        nth.append(crt(pow(rho, pow(n, -1, p - 1), p), pow(rho, pow(n, -1, q - 1), q)))
    while True:  # a square modulo p and not modulo q: Jacobi symbol −1
        w = secrets.randbelow(n - 2) + 2
        if is_square(w, p) and pow(w, (q - 1) // 2, q) == q - 1:
            break
    fourth = []
    for i in range(128):
        y = proof_challenge("fourth-root", n, h_s, i, w)
        c = next(c for c in (y, n - y, w * y % n, n - w * y % n) if is_square(c, p) and is_square(c, q))
        fourth.append(crt(pow(c, ((p + 1) // 4) ** 2, p), pow(c, ((q + 1) // 4) ** 2, q)))
    return {"w": f"{w:x}", "nth_roots": [f"{z:x}" for z in nth], "fourth_roots": [f"{x:x}" for x in fourth]}


# -- section 4: from a record to its feature vector ---------------------------------------------
class NoGlobals(pickle.Unpickler):
    def find_class(self, module, name):
        raise ValueError(f"col_tnf.pkl names {module}.{name}: refused")


def read_transform(path: Path) -> dict:
    d = NoGlobals(io.BytesIO(path.read_bytes())).load()
    assert d["format"] == "ppml.customer-transform" and d["version"] == 1
    return d


NUM = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
COMPANIES = ("Acer", "Apple", "Asus", "Chuwi", "Dell", "Fujitsu", "Google", "HP", "Huawei", "LG", "Lenovo", "MSI",
             "Mediacom", "Microsoft", "Razer", "Samsung", "Toshiba", "Vero", "Xiaomi")
TYPE_NAMES = ("2 in 1 Convertible", "Gaming", "Netbook", "Notebook", "Ultrabook", "Workstation")


class Refused(Exception):
    pass


def norm(v: str) -> str:
    t = " ".join(v.split())
    if not t:
        raise Refused(v)
    return t


def match(pattern: str, t: str):
    m = re.match(pattern, t, re.IGNORECASE)
    if not m:
        raise Refused(t)
    return m


def positive(s: str) -> float:
    v = float(s)
    if not (math.isfinite(v) and v > 0):
        raise Refused(s)
    return v


def canonical(names):
    return lambda v: {n.lower(): n for n in names}.get(norm(v).lower(), norm(v))


def cpu(v: str):
    t = norm(v)
    m = re.search(rf"(?<![0-9.]){NUM}\s*ghz(?![a-z])", t, re.IGNORECASE)
    if not m:
        raise Refused(t)
    core = re.match(r"^intel\s+core\s+i([357])(?![0-9a-z])", t, re.IGNORECASE)
    low = t.lower()
    brand = f"Intel Core i{core.group(1)}" if core else "Other Intel" if low.startswith("intel") else \
        "AMD" if low.startswith("amd") else "Other"
    return brand, positive(m.group(1))


def screen(v: str):
    t = norm(v)
    found = re.findall(r"(?<![0-9])([0-9]+)\s*[x×]\s*([0-9]+)(?![0-9])", t, re.IGNORECASE)
    if len(found) != 1:
        raise Refused(t)
    w, h = (positive(g) for g in found[0])
    touch = 1.0 if re.search(r"touch\s*screen", t, re.IGNORECASE) else 0.0
    ips = 1.0 if re.search(r"(?<![a-z])ips(?![a-z])", t, re.IGNORECASE) else 0.0
    return touch, ips, math.hypot(w, h)


def gpu(v: str):
    t = norm(v)
    brand = {"intel": "Intel", "nvidia": "Nvidia", "amd": "AMD", "arm": "ARM"}.get(t.split(" ", 1)[0].lower(), "Other")
    cleaned = re.sub(r"<U\+[0-9A-Fa-f]{1,6}>", " ", t, flags=re.IGNORECASE)
    cleaned = re.sub(r"(?<![0-9])[0-9]+\s*[gm]b(?![a-z])", " ", cleaned, flags=re.IGNORECASE)
    runs = re.findall(r"[0-9]+", cleaned)
    if any(len(r.lstrip("0")) > 9 for r in runs):
        raise Refused(t)
    return brand, float(max((int(r) for r in runs), default=0))


def memory(v: str):
    totals = {"hdd": 0.0, "ssd": 0.0, "hybrid": 0.0, "flash": 0.0}
    for part in norm(v).split("+"):
        m = match(rf"^{NUM}\s*(gb|tb)\s*(ssd|hdd|hybrid|flash\s+storage|flash|emmc)$", part.strip())
        kind = m.group(3).lower().split()[0]
        totals["flash" if kind == "emmc" else kind] += positive(m.group(1)) * (1000.0 if m.group(2).lower() == "tb" else 1.0)
    return totals


def opsys(v: str) -> str:
    low = norm(v).lower()
    compact = low.replace(" ", "")
    for prefix, name in (("windows", "Windows"), ("mac", "Mac"), ("linux", "Linux")):
        if low.startswith(prefix):
            return name
    return "Chrome OS" if compact.startswith("chromeos") else "No OS" if compact in ("noos", "none") else "Other"


def number(v: str) -> float:
    t = v.strip()
    if not re.match(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$", t) or not math.isfinite(float(t)):
        raise Refused(v)
    return float(t)


#: parser → (function of the source values, the column parser of each source).
PARSERS = {
    "number": (number, ("number",)),
    "category": (lambda v: v.strip(), ("category",)),
    "laptop.company": (canonical(COMPANIES), ("company",)),
    "laptop.type_name": (canonical(TYPE_NAMES), ("type_name",)),
    "laptop.cpu_brand": (lambda v: cpu(v)[0], ("cpu",)),
    "laptop.cpu_ghz": (lambda v: cpu(v)[1], ("cpu",)),
    "laptop.ram_gb": (lambda v: positive(match(rf"^{NUM}\s*gb$", norm(v)).group(1)), ("ram",)),
    "laptop.weight_kg": (lambda v: positive(match(rf"^{NUM}\s*kgs?$", norm(v)).group(1)), ("weight",)),
    "laptop.touchscreen": (lambda v: screen(v)[0], ("screen",)),
    "laptop.ips": (lambda v: screen(v)[1], ("screen",)),
    "laptop.ppi": (lambda s, i: screen(s)[2] / positive(match(rf'^{NUM}\s*(?:"|in|inch|inches)?$', norm(i)).group(1)),
                   ("screen", "inches")),
    "laptop.gpu_brand": (lambda v: gpu(v)[0], ("gpu",)),
    "laptop.gpu_number": (lambda v: gpu(v)[1], ("gpu",)),
    "laptop.os": (opsys, ("os",)),
    **{f"laptop.{kind}_gb": ((lambda k: lambda v: memory(v)[k])(kind), ("memory",))
       for kind in ("hdd", "ssd", "hybrid", "flash")},
}


def feature_vector(transform: dict, record: dict) -> list[float]:
    """Section 4, steps 1-3, for one record (a dict of the CSV's text values)."""
    missing = [c for c in transform["inputs"] if c not in record]
    assert not missing, missing
    features = {f["name"]: PARSERS[f["parser"]][0](*(record[c] for c in f["columns"])) for f in transform["features"]}
    x = []
    for block in transform["blocks"]:
        if block["kind"] == "one_hot":
            value = features[block["column"]]
            row = [0.0] * block["width"]
            col = dict(zip(block["categories"], block["index"])).get(value, block["unknown"])
            assert col != -2, "unknown category refused"
            if col >= 0:
                row[col] = 1.0
            x += row
        else:
            for j, name in enumerate(block["columns"]):
                v = float(features[name])
                if block["mean"] is not None:
                    v = v - block["mean"][j]
                if block["scale"] is not None:
                    v = v / block["scale"][j]
                if block["factor"] is not None:
                    v = v * block["factor"][j]
                if block["offset"] is not None:
                    v = v + block["offset"][j]
                x.append(v)
    assert len(x) == len(transform["names"])
    return x


class Customer:
    def __init__(self, model: dict, bits: int = 1024):
        self.model = model
        while True:  # section 2: a Paillier–Blum modulus, p ≡ q ≡ 3 (mod 4)
            self.public, self.private = paillier.generate_paillier_keypair(n_length=bits)
            if self.private.p % 4 == 3 and self.private.q % 4 == 3:
                break
        n = self.public.n
        while True:  # h_s = r0^n mod n² for a random unit r0: never used, only well-formed
            r0 = secrets.randbelow(n - 2) + 2
            if math.gcd(r0, n) == 1:
                break
        self.h_s = int(gmpy2.powmod(r0, n, n * n))
        self.key = {"format": "ppml.paillier-public-key", "version": 3, "bits": n.bit_length(),
                    "fingerprint": key_fingerprint(n, self.h_s), "n": format(n, "x"), "h_s": format(self.h_s, "x"),
                    "proof": modulus_proof(self.private.p, self.private.q, self.h_s)}
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


def test_through_the_service(setup):
    folder, customer = setup["folder"], setup["customer"]
    token = _run([PY, "-m", "ppml", "clients", "add", "outsider", "--db", "c.db"], folder).stdout.decode().split()[-1]
    server = subprocess.Popen([PY, "-m", "ppml", "serve", "--model", str(ROOT), "--db", "c.db", "--port", "0",
                               "--workers", "1", "--allow-weak-key"], cwd=folder, stderr=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, text=True)
    try:
        url, deadline = None, time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = server.stderr.readline()
            if not line:
                break
            m = re.search(r"running on (http://127\.0\.0\.1:\d+)", line)
            url = m.group(1) if m else None
        assert url, "the service did not start"
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
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()



@pytest.mark.parametrize("source", ["bundled", "public"])
def test_feature_vectors_from_the_documents_alone_equal_ppml_features(tmp_path, source):
    path = ROOT / "Data" / "laptop_data.csv"
    if source == "public":
        if not PUBLIC_LAPTOPS:
            pytest.skip("the public laptop data set is not beside this checkout")
        path = PUBLIC_LAPTOPS[0]
    transform = read_transform(ROOT / "col_tnf.pkl")
    model = json.loads((ROOT / "Encrypted_ModelParameters" / "Model.json").read_text())
    assert transform["names"] == model["features"]
    _run([PY, "-m", "ppml", "features", str(path), "-o", "X.csv", "--model", str(ROOT), "-q"], tmp_path)
    with open(tmp_path / "X.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    with open(path, newline="", encoding="utf-8") as f:
        records = list(csv.DictReader(f))
    assert rows[0][1:] == model["features"] and len(rows) - 1 == len(records) > 1000
    for record, row in zip(records, rows[1:]):
        mine = feature_vector(transform, record)
        assert mine == [float(v) for v in row[1:]], row[0]  # the same float64 operations: exact
        assert all(lo <= v <= hi for v, lo, hi in zip(mine, model["lower"], model["upper"]))


def test_the_client_reader_refuses_a_pickle_with_a_global(tmp_path):
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(print))
    with pytest.raises(ValueError, match="names builtins.print: refused"):
        read_transform(tmp_path / "evil.pkl")
