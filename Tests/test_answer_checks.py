"""Answers are checked against the request, and CSV cells are never live formulas.

A company (or anyone between it and the customer) may return an answer that adds, drops,
changes or reorders ids, splits batches differently, declares another record count, or holds a
slot the model cannot reach. ``CustomerDecrypts.py`` (given the features document it sent:
``--request``, by default ``Encrypted_Data/data.json`` beside the default answer),
``python -m ppml request`` and the portal refuse every such answer with exit status 4 and one
``Error:`` line, before anything is printed or written. Every CSV the toolkit writes puts a
``'`` before a text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or CR.

512-bit keys (``allow_weak``): five 93-bit slots per ciphertext, so twelve records make three
batches (5, 5, 2).
"""
from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import secrets
import shutil
import warnings
from pathlib import Path

import gmpy2
import httpx
import numpy as np
import pytest
from click.testing import CliRunner

with warnings.catch_warnings():  # newer Starlette prefers httpx2 for its TestClient; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from conftest import ROOT, key_folder, run_script
from ppml import client, stages
from ppml.cli import main
from ppml.cli.decrypt import decrypt_command
from ppml.errors import AnswerMismatchError
from ppml.keystore import KeyStore
from ppml.paillier import generate_keypair
from ppml.portal.predict import Customer, predict
from ppml.service.app import Settings, create_app
from ppml.service.clients import ClientDB
from ppml.stages import csv_field

KEY_BITS = 512
WEAK = "--allow-weak-key"
DATA = "Encrypted_Data/data.json"
ANSWER = "Encrypted_Predicted_value/answer.json"
FORMULA = '=HYPERLINK("http://evil.example/","x")'
#: The customer's own ids: numbers, a negative number as text, and two formulas.
IDS = [0, 1, 2, 3, 4, 5, 6, 7, 8, "-7", FORMULA, "@SUM(A1)"]
RANGE = "decodes outside the range the model can reach over its declared bounds (|Σ W·X + B| ≤ 2^92 − 1 " \
        "with Model.json's 93-bit slots)"


@pytest.fixture(scope="module")
def keypair512():
    return generate_keypair(KEY_BITS, allow_weak=True)


@pytest.fixture(scope="module")
def raw(bundled_raw):
    frame = bundled_raw.iloc[:len(IDS)].drop(columns=["Price"], errors="ignore").reset_index(drop=True)
    frame.insert(0, "id", [str(i) for i in IDS])
    return frame


@pytest.fixture(scope="module")
def base(tmp_path_factory, keypair512, raw, params):
    """A customer's folder after the three steps: model files, keys, records, request, answer."""
    b = tmp_path_factory.mktemp("answers")
    (b / "Encrypted_ModelParameters").mkdir()
    shutil.copy(ROOT / "Encrypted_ModelParameters" / "Model.json", b / "Encrypted_ModelParameters")
    shutil.copy(ROOT / "col_tnf.pkl", b)
    raw.to_csv(b / "records.csv", index=False)
    keys = stages.CustomerKeys(KeyStore(key_folder(b / "PaillierKeys", keypair512)), allow_weak=True)
    spec, col_tnf = stages.customer_model(b)
    stages.encrypt(str(b / "records.csv"), str(b / DATA), spec=spec, col_tnf=col_tnf, keys=keys)
    stages.score(str(b / DATA), str(b / ANSWER), params=params, allow_weak=True)
    return b


@pytest.fixture
def work(base, tmp_path, monkeypatch):
    folder = tmp_path / "w"
    shutil.copytree(base, folder)
    monkeypatch.chdir(folder)
    return folder


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def load(path=ANSWER) -> dict:
    return json.loads(Path(path).read_text())


def save(d: dict, path=ANSWER) -> None:
    Path(path).write_text(json.dumps(d, separators=(",", ":")) + "\n")


# ---------------------------------------------------------------------------------------------
# Forged answers: (name, change to the answer document, the expected message after the file)
# ---------------------------------------------------------------------------------------------
def added_id(d, keys):
    d["batches"][2]["ids"].append(99)
    d["records"] += 1


def removed_id(d, keys):
    d["batches"][2]["ids"].pop()
    d["records"] -= 1


def changed_id(d, keys):
    d["batches"][0]["ids"][1] = 99


def formula_id(d, keys):
    d["batches"][0]["ids"][1] = '=HYPERLINK("http://evil.example/","y")'


def reordered_batch(d, keys):
    d["batches"][0]["ids"].reverse()


def swapped_batches(d, keys):
    d["batches"][0], d["batches"][1] = d["batches"][1], d["batches"][0]


def split_differently(d, keys):
    first = d["batches"][0]
    d["batches"][0:1] = [{**first, "ids": first["ids"][:4]}, {**first, "ids": first["ids"][4:]}]


def extra_batch(d, keys):
    d["batches"].append(copy.deepcopy(d["batches"][2]))
    d["records"] += 2


def missing_batch(d, keys):
    d["batches"].pop()
    d["records"] -= 2


def changed_record_count(d, keys):
    d["records"] += 1


def slot_out_of_range(d, keys):
    """Batch 0's answer replaced by the customer's own encryption of the honest plaintext with
    slot 2 (record 2) set to 0, i.e. the sum −2^(k−1), just beyond what the model can reach."""
    public, private = keys
    n = int(public.n)
    k = 93
    v = int(private.raw_decrypt(int(d["batches"][0]["ciphertexts"][0], 16)))
    v &= ~(((1 << k) - 1) << (2 * k))
    r = secrets.randbelow(n - 2) + 2
    d["batches"][0]["ciphertexts"][0] = format((1 + v * n) * int(gmpy2.powmod(r, n, n * n)) % (n * n), "x")


FORGERIES = [
    ("added-id", added_id, "batch 2 holds 3 records where the request sent 2"),
    ("removed-id", removed_id, "batch 2 holds 1 record where the request sent 2"),
    ("changed-id", changed_id, "batch 0, record 1: id 99 where the request sent 1"),
    ("formula-id", formula_id,
     """batch 0, record 1: id '=HYPERLINK("http://evil.example/","y")' where the request sent 1"""),
    ("reordered-batch", reordered_batch, "batch 0, record 0: id 4 where the request sent 0"),
    ("swapped-batches", swapped_batches, "batch 0, record 0: id 5 where the request sent 0"),
    ("split-differently", split_differently, "batch 0 holds 4 records where the request sent 5"),
    ("extra-batch", extra_batch, f"batch 3 was never sent (the request {DATA} has 3 batches)"),
    ("missing-batch", missing_batch, f"holds 2 batches where the request {DATA} has more (batch 2 has no answer)"),
    ("changed-record-count", changed_record_count, "declares 13 records where the request sent 12"),
    ("slot-out-of-range", slot_out_of_range, "record 2, output 'Price': " + RANGE),
]
IDS_OF = [name for name, _, _ in FORGERIES]


@pytest.mark.parametrize("name, forge, message", FORGERIES, ids=IDS_OF)
def test_customer_decrypts_refuses_a_forged_answer_in_a_process(work, keypair512, name, forge, message):
    """The root script with its defaults (the request is Encrypted_Data/data.json): exit 4, one
    line, nothing on stdout, no file written."""
    d = load()
    forge(d, keypair512)
    save(d)
    before = snapshot(work)
    for args in ([], ["-o", "predictions.csv"], ["-o", "-"]):
        done = run_script("CustomerDecrypts.py", *args, WEAK, cwd=work)
        assert (done.returncode, done.stderr.decode(), done.stdout) == (4, f"Error: {ANSWER}: {message}\n", b"")
        assert snapshot(work) == before


@pytest.mark.parametrize("name, forge, message", FORGERIES, ids=IDS_OF)
def test_customer_decrypts_refuses_a_forged_answer_in_process(work, keypair512, name, forge, message):
    """Through the click command with an explicit --request and an answer elsewhere."""
    d = load()
    forge(d, keypair512)
    os.mkdir("in")
    save(d, "in/forged.json")
    shutil.copy(DATA, "in/sent.json")
    before = snapshot(work)
    r = CliRunner().invoke(decrypt_command, ["in/forged.json", "--request", "in/sent.json", "-o", "out.csv", WEAK])
    assert (r.exit_code, r.output) == (4, f"Error: in/forged.json: {message.replace(DATA, 'in/sent.json')}\n")
    assert snapshot(work) == before


def test_an_answer_for_another_request_is_refused(work, keypair512):
    """The same records encrypted under another key: an answer to one is refused as the answer
    to the other, on the header alone."""
    other = stages.CustomerKeys(KeyStore(key_folder(work / "OtherKeys", generate_keypair(KEY_BITS, True))),
                                allow_weak=True)
    spec, col_tnf = stages.customer_model(work)
    stages.encrypt("records.csv", "other.json", spec=spec, col_tnf=col_tnf, keys=other)
    r = CliRunner().invoke(decrypt_command, [ANSWER, "--request", "other.json", WEAK])
    fp, other_fp = keypair512[0].fingerprint, other.pair()[0].fingerprint
    assert (r.exit_code, r.output) == (4, f"Error: {ANSWER}: the answer is for key {fp[:19]}…, the request "
                                          f"other.json was sent for key {other_fp[:19]}…\n")


def test_an_honest_answer_matches_scikit_learn_and_its_csv_has_no_live_formula(work, raw, pipeline):
    """The request check passes an honest answer; its CSV equals the plaintext model to 1e-9,
    ids that begin like a formula get a leading quote, numbers (and numeric text) stay as
    they are."""
    done = run_script("CustomerDecrypts.py", "-o", "predictions.csv", WEAK, "-q", cwd=work)
    assert done.returncode == 0, done.stderr.decode()
    rows = list(csv.reader(io.StringIO(Path("predictions.csv").read_text())))
    assert rows[0] == ["id", "prediction"]
    assert [row[0] for row in rows[1:]] == [*map(str, IDS[:10]), "'" + FORMULA, "'@SUM(A1)"]
    expected = [math.exp(v) for v in pipeline.predict(raw.drop(columns=["id"]))]
    got = [float(row[1]) for row in rows[1:]]
    assert max(abs(g - e) / e for g, e in zip(got, expected)) <= 1e-9
    printed = run_script("CustomerDecrypts.py", WEAK, cwd=work)
    assert printed.returncode == 0 and printed.stdout.decode().splitlines()[10].startswith(FORMULA + ": Price = ")


def test_the_features_csv_has_no_live_formula(work):
    spec, col_tnf = stages.customer_model(work)
    stages.features("records.csv", "features.csv", spec=spec, col_tnf=col_tnf)
    rows = list(csv.reader(io.StringIO(Path("features.csv").read_text())))
    assert [row[0] for row in rows[1:]] == [*map(str, IDS[:10]), "'" + FORMULA, "'@SUM(A1)"]


def test_without_a_request_a_pipe_still_refuses_a_slot_out_of_range(work, keypair512):
    d = load()
    slot_out_of_range(d, keypair512)
    done = run_script("CustomerDecrypts.py", "-", "-o", "-", WEAK, cwd=work, stdin=json.dumps(d).encode())
    assert (done.returncode, done.stderr.decode(), done.stdout) == (4, f"Error: <stdin>: record 2, output "
                                                                       f"'Price': {RANGE}\n", b"")


def test_the_default_request_applies_to_the_default_answer_however_it_is_spelt(work, keypair512):
    d = load()
    changed_id(d, keypair512)
    save(d)
    r = CliRunner().invoke(decrypt_command, ["./Encrypted_Predicted_value//answer.json", WEAK])
    assert (r.exit_code, r.output) == (4, "Error: ./Encrypted_Predicted_value//answer.json: batch 0, record 1: id 99 "
                                          "where the request sent 1\n")
    r = CliRunner().invoke(decrypt_command, ["-", "--request", "-", WEAK])
    assert r.exit_code == 2 and r.output.splitlines()[-1] == (
        "Error: Invalid value for --request: the answer already comes from stdin; name the request's file")


def test_a_request_that_cannot_be_read_is_named(work):
    r = CliRunner().invoke(decrypt_command, ["--request", "nowhere.json", WEAK])
    assert (r.exit_code, r.output) == (3, "Error: nowhere.json: file not found\n")


def test_folder_mode_matches_each_answer_to_the_request_of_its_name(work, keypair512):
    """Cron: Encrypted_Predicted_value/<name>.json answers Encrypted_Data/<name>.json (and the
    default answer.json the default data.json). A forged answer and an answer with no request
    are refused; the others are decrypted."""
    for name in ("good", "forged"):
        shutil.copy(DATA, f"Encrypted_Data/{name}.json")
        shutil.copy(ANSWER, f"Encrypted_Predicted_value/{name}.json")
    shutil.copy(ANSWER, "Encrypted_Predicted_value/unasked.json")  # answer.json stays: it answers data.json
    d = load("Encrypted_Predicted_value/forged.json")
    changed_id(d, keypair512)
    save(d, "Encrypted_Predicted_value/forged.json")
    done = run_script("CustomerDecrypts.py", "Encrypted_Predicted_value/", "-o", "Predictions/", WEAK, "-q",
                      cwd=work)
    assert done.returncode == 1
    assert done.stderr.decode().splitlines() == [
        "Error: Encrypted_Predicted_value/forged.json: batch 0, record 1: id 99 where the request sent 1",
        "Error: Encrypted_Predicted_value/unasked.json: answers no request: Encrypted_Data/unasked.json does not "
        "exist",
        "decrypt Encrypted_Predicted_value/: processed 2, skipped 0, failed 2"]
    assert sorted(p.name for p in Path("Predictions").iterdir() if not p.name.startswith(".")) == ["answer.csv",
                                                                                                    "good.csv"]


@pytest.mark.parametrize("value, cell", [
    ("=1+2", "'=1+2"), ("+1", "+1"), ("-1.5e3", "-1.5e3"), ("-x", "'-x"), ("@a", "'@a"), ("\tx", "'\tx"),
    ("\rx", "\"'\rx\""), ("a,b", '"a,b"'), (FORMULA, '"\'=HYPERLINK(""http://evil.example/"",""x"")"'),
    (-1.5, "-1.5"), (-3, "-3"), (np.float64(-0.25), "-0.25"), (True, "True"), ("setosa", "setosa"),
])
def test_csv_field_neutralizes_formulas_and_keeps_numbers(value, cell):
    assert csv_field(value) == cell


# ---------------------------------------------------------------------------------------------
# python -m ppml request and the portal, against an in-process service and a forging proxy
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def service(tmp_path_factory, params):
    folder = tmp_path_factory.mktemp("service")
    db = ClientDB(folder / "clients.db")
    token = db.add("acme")
    app = create_app(params, db=db, settings=Settings(workers=1, allow_weak_key=True), model_dir=ROOT)
    with TestClient(app) as http:
        yield http, token


def proxy(service, forge=None, keys=None):
    """An httpx client whose /v1/score goes to the real service, the answer then altered by
    ``forge`` (None: passed on as it is)."""
    http, _ = service

    def handler(request):
        r = http.post(request.url.path, content=request.read(), headers=dict(request.headers))
        if forge is None or r.status_code != 200:
            return httpx.Response(r.status_code, content=r.content, headers=r.headers)
        d = json.loads(r.content)
        forge(d, keys)
        return httpx.Response(200, content=json.dumps(d).encode(), headers={"content-type": "application/json"})

    return httpx.Client(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("name, forge, message", [f for f in FORGERIES if f[0] != "slot-out-of-range"],
                         ids=[i for i in IDS_OF if i != "slot-out-of-range"])
def test_request_refuses_an_answer_that_does_not_answer_the_document(work, service, name, forge, message):
    """ppml.client.score: nothing is written to a file or a stream; the exit status is 4."""
    _, token = service
    sink = io.BytesIO()
    for output in ("got.json", sink):
        with pytest.raises(AnswerMismatchError) as e:
            client.score("http://x", DATA, output, token, http=proxy(service, forge))
        assert (str(e.value), e.value.exit_code) == (f"http://x/v1/score: {message}", 4)
    assert not Path("got.json").exists() and sink.getvalue() == b""


def test_request_command_refuses_a_forged_answer_and_passes_an_honest_one(work, service, monkeypatch):
    _, token = service
    monkeypatch.setenv(client.TOKEN_ENV, token)
    monkeypatch.setattr(client, "_http", lambda timeout, verify: proxy(service, changed_id))
    r = CliRunner().invoke(main, ["request", "http://x", DATA, "-o", "got.json", "-q"])
    assert (r.exit_code, r.output) == (4, "Error: http://x/v1/score: batch 0, record 1: id 99 where the request "
                                          "sent 1\n")
    assert not Path("got.json").exists()
    monkeypatch.setattr(client, "_http", lambda timeout, verify: proxy(service))
    r = CliRunner().invoke(main, ["request", "http://x", DATA, "-o", "got.json", "-q"])
    assert r.exit_code == 0, r.output
    assert [b["ids"] for b in load("got.json")["batches"]] == [IDS[:5], IDS[5:10], IDS[10:]]


def test_request_in_a_pipeline_prints_nothing_of_a_forged_answer(work, service, monkeypatch):
    """``… -o - | python -m ppml request URL - -o - | …``: the document read from stdin is
    spooled, the answer held back until checked."""
    _, token = service
    monkeypatch.setenv(client.TOKEN_ENV, token)
    monkeypatch.setattr(client, "_http", lambda timeout, verify: proxy(service, removed_id))
    r = CliRunner().invoke(main, ["request", "http://x", "-", "-o", "-", "-q"], input=Path(DATA).read_bytes())
    assert (r.exit_code, r.output) == (4, "Error: http://x/v1/score: batch 2 holds 1 record where the request "
                                          "sent 2\n")


def test_the_portal_refuses_a_forged_answer_and_its_download_has_no_live_formula(work, service, keypair512, raw,
                                                                                  pipeline):
    _, token = service
    keys = stages.CustomerKeys(KeyStore(work / "PaillierKeys"), allow_weak=True)
    records = raw.to_csv(index=False).encode()
    forged = Customer.load("http://x", token, work, keys, http=proxy(service, formula_id))
    with pytest.raises(AnswerMismatchError) as e:
        predict(forged, records, "up.csv")
    assert str(e.value) == ("http://x/v1/score: batch 0, record 1: id '=HYPERLINK(\"http://evil.example/\",\"y\")' "
                            "where the request sent 1")
    honest = Customer.load("http://x", token, work, keys, http=proxy(service))
    result = predict(honest, records, "up.csv")
    rows = list(csv.reader(io.StringIO(result.csv.decode())))
    assert [row[0] for row in rows[1:]] == [*map(str, IDS[:10]), "'" + FORMULA, "'@SUM(A1)"]
    expected = [math.exp(v) for v in pipeline.predict(raw.drop(columns=["id"]))]
    assert max(abs(float(row[1]) - e) / e for row, e in zip(rows[1:], expected)) <= 1e-9


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update({"format": d.pop("format"), "note": "x", **{k: d.pop(k) for k in list(d)}}),
     "unknown field 'note' (the fields are codec, format, key_fingerprint, layout, model_fingerprint, outputs, "
     "records, slots, version)"),
    (lambda d: d.update(outputs=["Price", *["y" * 100] * 10_000]),
     "field 'outputs' is longer than the 1,042 bytes it can need"),
    (lambda d: d["codec"].update(feature_bits=[[[1]]]), "JSON nested too deeply (field 'codec' nests at most 1 level)"),
])
def test_an_answers_header_is_read_under_the_same_per_field_caps(work, change, message):
    """The company writes the answer: the customer's reader gives each of its header fields
    the cap the customer's own model sets, as the company's reader does for the request, and
    refuses anything else as soon as it is read (exit 3, nothing written)."""
    d = load()
    change(d)
    save(d)
    before = snapshot(work)
    r = CliRunner().invoke(decrypt_command, ["-o", "out.csv", WEAK])
    assert (r.exit_code, r.output) == (3, f"Error: {ANSWER}: {message}\n")
    assert snapshot(work) == before
