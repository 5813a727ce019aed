"""The customer's portal in-process, without a browser: the portal's app driven by Starlette's
TestClient, talking to the company's service app (also in-process) through ``ppml.client``.
Pages are read as HTML; predictions are compared with the plaintext model to the cent, errors
with what the scripts print, and the portal's defences (Host check, CSRF) are probed.

1024-bit keys (``allow_weak_key``) for speed.
"""
from __future__ import annotations

import io
import math
import re
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

with warnings.catch_warnings():  # newer Starlette prefers httpx2 for its TestClient; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from conftest import ROOT, key_folder
from ppml import artifacts, stages
from ppml.cli import main
from ppml.display import readable
from ppml.records import SAMPLE_LAPTOP
from ppml.keystore import KeyStore
from ppml.portal import app as portal_app
from ppml.portal.app import create_app, host_name, safe_name
from ppml.portal.form import NUMBER, SELECT, TEXT, form_fields, plain_number
from ppml.portal.histogram import histogram
from ppml.portal.predict import Customer
from ppml.service.app import Settings
from ppml.service.app import create_app as create_service
from ppml.service.clients import ClientDB

PORTAL = "http://127.0.0.1:8501"


# -- a page, parsed -----------------------------------------------------------------------------
class Page(HTMLParser):
    """The parts of a page the tests read: elements by id (tag, attributes, text), form
    controls, labels, table rows, every URL the page refers to."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.ids, self.controls, self.labels, self.urls = {}, [], {}, []
        self.rows, self.options = [], {}
        self._open: list = []  # [id, tag, attrs, text parts] of elements with an id still open
        self._label = None
        self._row = None
        self._cell = None
        self._select = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for name in ("href", "src", "action"):
            if a.get(name):
                self.urls.append(a[name])
        if tag in ("input", "select", "textarea", "button"):
            self.controls.append((tag, a))
        if tag == "select":
            self._select = a.get("name")
            self.options[self._select] = []
        if tag == "option" and self._select is not None:
            self.options[self._select].append((a.get("value"), "selected" in a))
        if tag == "label":
            self._label = [a.get("for"), []]
        if tag == "tr" and any(e[0] == "results" for e in self._open):
            self._row = []
        if tag == "td" and self._row is not None:
            self._cell = []
        if "id" in a and tag not in ("input", "link", "meta", "img", "br", "line", "rect"):
            self._open.append([a["id"], tag, a, []])
        elif "id" in a:
            self.ids[a["id"]] = (tag, a, "")

    def handle_endtag(self, tag):
        if tag == "label" and self._label:
            self.labels[self._label[0]] = "".join(self._label[1]).strip()
            self._label = None
        if tag == "select":
            self._select = None
        if tag == "td" and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        if tag == "tr" and self._row is not None:
            if self._row:
                self.rows.append(self._row)
            self._row = None
        if self._open and self._open[-1][1] == tag:
            eid, t, a, text = self._open.pop()
            self.ids[eid] = (t, a, "".join(text).strip())
            if self._open:
                self._open[-1][3].extend(text)

    def handle_data(self, data):
        if self._open:
            self._open[-1][3].append(data)
        if self._label:
            self._label[1].append(data)
        if self._cell is not None:
            self._cell.append(data)

    def text(self, eid: str) -> str:
        """The element's text, white space collapsed."""
        return " ".join(self.ids[eid][2].split())

    def control(self, name: str) -> tuple:
        return next((tag, a) for tag, a in self.controls if a.get("name") == name)

    def csrf(self) -> str:
        return self.control("csrftoken")[1]["value"]


def page(response) -> Page:
    assert response.headers["content-type"].startswith("text/html")
    return Page(response.text)


# -- the company's service and the customer's portal, in-process ---------------------------------
class Site:
    """The service for the model in ``model_dir`` (client ``acme``) and a portal over it."""

    def __init__(self, folder: Path, model_dir: Path, keypair):
        self.model_dir = model_dir
        db = ClientDB(folder / "clients.db")
        token = db.add("acme")
        params = artifacts.load_parameters(model_dir / artifacts.PARAMS_DIR)
        service = create_service(params, db=db, settings=Settings(workers=1, allow_weak_key=True),
                                 model_dir=model_dir)
        self.service = TestClient(service)
        keys = stages.CustomerKeys(KeyStore(key_folder(folder / "keys", keypair)), allow_weak=True)
        self.customer = Customer.load("http://testserver", token, model_dir, keys, http=self.service)
        self.http = TestClient(create_app(self.customer), base_url=PORTAL)

    def __enter__(self):
        self.service.__enter__()
        self.http.__enter__()
        return self

    def __exit__(self, *exc):
        self.http.__exit__(*exc)
        self.service.__exit__(*exc)

    def form(self) -> Page:
        r = self.http.get("/")
        assert r.status_code == 200
        return page(r)

    def predict(self, values: dict, **headers):
        token = self.form().csrf()
        return self.http.post("/predict", data={"csrftoken": token, **values}, headers=headers)

    def upload(self, data: bytes, name="laptops.csv", token=None):
        token = token or self.form().csrf()
        return self.http.post("/batch", data={"csrftoken": token}, files={"records": (name, data, "text/csv")})


@pytest.fixture(scope="module")
def site(tmp_path_factory, keypair):
    with Site(tmp_path_factory.mktemp("portal"), ROOT, keypair) as s:
        yield s


def laptop_prices(pipeline, raw) -> list[float]:
    return [math.exp(v) for v in pipeline.predict(raw)]


def cents(text: str) -> float:
    return float(text.replace(",", ""))


def assert_to_the_cent(shown: str, expected: float):
    assert abs(cents(shown) - expected) < 0.005 + 1e-9 * abs(expected), (shown, expected)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


# -- the form -----------------------------------------------------------------------------------
def test_the_form_has_a_labelled_control_per_raw_column_prefilled_with_the_sample_laptop(site, col_tnf):
    p = site.form()
    names = [a.get("name") for tag, a in p.controls if tag in ("input", "select") and a.get("type") != "hidden"
             and a.get("type") != "file"]
    assert names == list(col_tnf.input_columns) == list(SAMPLE_LAPTOP)
    for name in names:
        tag, a = p.control(name)
        assert p.labels[a["id"]] == name
        assert a.get("value") == SAMPLE_LAPTOP[name]
    assert p.control("Inches")[1]["type"] == "number"
    for free_text in ("Cpu", "Gpu", "Company"):  # free text, with suggestions
        a = p.control(free_text)[1]
        assert a["type"] == "text" and a["list"] in p.ids and p.ids[a["list"]][0] == "datalist"
    submits = [a for tag, a in p.controls if tag == "button"]
    assert len(submits) == 2 and all(a["type"] == "submit" for a in submits)
    assert p.control("records")[1]["type"] == "file"


def test_the_page_loads_nothing_from_elsewhere_and_sets_a_strict_csrf_cookie(site):
    r = site.http.get("/")
    p = page(r)
    assert p.urls and all(u.startswith("/") and not u.startswith("//") for u in p.urls), p.urls
    assert "<script" not in r.text
    assert "default-src 'none'" in r.headers["content-security-policy"]
    cookie = r.headers.get("set-cookie") or ""
    assert (not cookie) or ("httponly" in cookie.lower() and "samesite=strict" in cookie.lower())
    for path, kind in (("/favicon.ico", "image/svg+xml"), ("/static/favicon.svg", "image/svg+xml"),
                       ("/static/portal.css", "text/css")):
        r = site.http.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind)


# -- one record ---------------------------------------------------------------------------------
def test_one_record_is_predicted_to_the_cent_and_the_company_view_says_what_was_seen(site, pipeline,
                                                                                      bundled_raw):
    record = bundled_raw.iloc[7]
    values = {c: record[c] for c in SAMPLE_LAPTOP}
    r = site.predict(values)
    assert r.status_code == 200
    p = page(r)
    expected = laptop_prices(pipeline, pd.DataFrame([values]))[0]
    assert p.text("prediction") == readable(expected)  # exactly as CustomerDecrypts.py prints it
    assert_to_the_cent(p.text("prediction"), expected)
    view = p.text("company-view")
    public = site.customer.public_key
    assert public.fingerprint in view and f"{public.bits} bits" in view
    features = len(site.customer.spec.features)
    assert f"as {features} ciphertext(s)" in view
    assert re.search(r"[0-9a-f]{16}…", view)  # the first characters of the ciphertexts
    for step in ("encrypt: encrypt", "the company's service", "decrypt: decrypt", "in all"):
        assert step in view
    for name, value in values.items():  # the form keeps what was typed
        assert p.control(name)[1]["value"] == value


def test_the_sample_laptop_gives_the_scripts_price(site):
    p = page(site.predict(dict(SAMPLE_LAPTOP)))
    assert p.text("prediction") == "62,996.92"


@pytest.mark.parametrize("column, value", [("Ram", "lots"), ("Weight", "-2kg"), ("Ram", "9000GB"),
                                           ("Inches", "")])
def test_invalid_input_shows_the_scripts_reason_next_to_the_form_and_keeps_the_values(site, tmp_path, column,
                                                                                        value):
    values = {**SAMPLE_LAPTOP, column: value}
    p = page(site.predict(values))
    assert "prediction" not in p.ids
    shown = p.text("error")
    assert p.ids["error"][1]["role"] == "alert"
    # What CustomerEncrypts.py says about the same record, less the file name it names.
    path = tmp_path / "bad.csv"
    path.write_bytes(csv_bytes(pd.DataFrame([values])))
    result = CliRunner().invoke(main, ["encrypt", str(path), "--model", str(ROOT), "-o", str(tmp_path / "x.json"),
                                       "--keys", str(tmp_path / "keys"), "--allow-weak-key"])
    assert result.exit_code == 3
    script = result.output.strip().splitlines()[-1]
    assert script.startswith(f"Error: {path}: ")
    assert shown == "Error: " + script.removeprefix(f"Error: {path}: ")
    for name, typed in values.items():
        assert p.control(name)[1]["value"] == typed


def test_a_service_error_is_shown_as_request_shows_it(tmp_path, keypair):
    with Site(tmp_path, ROOT, keypair) as s:
        s.customer.token = "ppml_not-a-token"
        p = page(s.predict(dict(SAMPLE_LAPTOP)))
        assert p.text("error").startswith("Error: http://testserver/v1/score: 401 missing or unknown bearer token")


# -- a CSV of records ---------------------------------------------------------------------------
def test_a_20_record_csv_gives_a_table_a_download_and_a_histogram(site, pipeline, bundled_raw):
    raw = bundled_raw.iloc[100:120].reset_index(drop=True)  # with the Price column, which is ignored
    r = site.upload(csv_bytes(raw))
    assert r.status_code == 200
    p = page(r)
    expected = laptop_prices(pipeline, raw)
    assert len(p.rows) == 20
    for row, price, i in zip(p.rows, expected, range(20)):
        assert row[0] == str(i)
        assert row[-1] == readable(price)
        assert_to_the_cent(row[-1], price)
        assert row[1:-1] == [raw.iloc[i][c] for c in SAMPLE_LAPTOP]
    href = p.ids["download"][1]["href"]
    download = site.http.get(href)
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert 'filename="laptops-predictions.csv"' in download.headers["content-disposition"]
    got = pd.read_csv(io.BytesIO(download.content))
    assert list(got.columns) == ["id", "prediction"]
    assert got["id"].tolist() == list(range(20))
    assert max(abs(g - e) / e for g, e in zip(got["prediction"], expected)) <= 1e-9
    assert "<svg" in r.text and r.text.count('class="bar"') >= 2
    assert "records per bin" in r.text
    assert f"{20} record(s)" in p.text("company-view")


def test_the_download_is_what_customer_decrypts_writes(site, bundled_raw, tmp_path, keypair):
    """Same bytes layout as ``CustomerDecrypts.py -o``: ``id,prediction`` with ids from the
    CSV's id column and full-precision values."""
    raw = bundled_raw.iloc[:5].reset_index(drop=True)
    raw.insert(0, "id", ["a", "b", "c", "d", "e"])
    p = page(site.upload(csv_bytes(raw)))
    data = site.http.get(p.ids["download"][1]["href"]).content.decode()
    lines = data.splitlines()
    assert lines[0] == "id,prediction" and [line.split(",")[0] for line in lines[1:]] == list("abcde")
    assert all(repr(float(line.split(",")[1])) == line.split(",")[1] for line in lines[1:])
    assert [row[0] for row in p.rows] == list("abcde")


def test_an_invalid_csv_gets_the_scripts_error_with_its_name(site, bundled_raw):
    raw = bundled_raw.iloc[:3].drop(columns=["Cpu"])
    p = page(site.upload(csv_bytes(raw), name="../my laptops;.csv"))
    assert p.text("error").startswith("Error: my laptops_.csv: missing column(s) 'Cpu'")
    assert "results" not in p.ids
    p = page(site.http.post("/batch", data={"csrftoken": site.form().csrf()},
                            files={"records": ("", b"", "text/csv")}))
    assert p.text("error") == "Error: choose a CSV file of records first"


def test_uploads_over_the_limit_are_refused_before_reading(site, monkeypatch, bundled_raw):
    monkeypatch.setattr(portal_app, "MAX_UPLOAD_BYTES", 1000)
    r = site.upload(csv_bytes(bundled_raw.iloc[:40]))
    assert r.status_code == 413
    assert "larger than the portal's limit" in page(r).text("error")


def test_an_expired_download_is_404(site):
    assert site.http.get("/download/nothing-here").status_code == 404


# -- any model: the salary walk-through, with a categorical column ---------------------------------
def salary_records(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 65, n)
    eating, active, gender = rng.integers(0, 11, n), rng.integers(0, 11, n), rng.integers(0, 2, n)
    team = rng.choice(["sales", "research", "support"], n)
    salary = 4000 + 350 * age + 900 * eating + 700 * active + 2500 * gender + 3000 * (team == "research")
    salary = np.round(salary + rng.normal(0, 2000, n), -1).astype(int)
    return pd.DataFrame({"age": age, "healthy_eating": eating, "active_lifestyle": active, "Gender": gender,
                         "team": team, "salary": salary}).astype(str)


@pytest.fixture(scope="module")
def salary_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("salary")
    salary_records(300, 7).to_csv(folder / "employees.csv", index=False)
    result = CliRunner().invoke(main, ["train", str(folder / "employees.csv"), "--target", "salary", "--out-dir",
                                       str(folder / "model"), "-q"])
    assert result.exit_code == 0, result.output
    return folder / "model"


def test_a_trained_salary_model_gets_its_own_form_and_exact_predictions(salary_model, tmp_path, keypair):
    pipeline = artifacts.load_pickle(salary_model / artifacts.PIPELINE)
    with Site(tmp_path, salary_model, keypair) as s:
        p = s.form()
        for name in ("age", "healthy_eating", "active_lifestyle", "Gender"):
            a = p.control(name)[1]
            assert a["type"] == "number" and p.labels[a["id"]] == name
            assert 0 < float(a["value"]) < 70  # the training mean, a sensible default
        tag, a = p.control("team")
        assert tag == "select" and [v for v, _ in p.options["team"]] == [None] * 3
        assert "research" in p.text("one")
        defaults = {name: s.form().control(name)[1].get("value") for name in ("age", "healthy_eating",
                                                                               "active_lifestyle", "Gender")}
        record = {**defaults, "team": "research"}
        shown = page(s.predict(record)).text("prediction")
        expected = float(pipeline.predict(pd.DataFrame([record]))[0])
        assert shown == readable(expected)
        assert_to_the_cent(shown, expected)
        raw = salary_records(20, 11).drop(columns="salary")
        rows = page(s.upload(csv_bytes(raw), name="employees.csv")).rows
        expected = pipeline.predict(raw)
        assert len(rows) == 20 and all(row[-1] == readable(e) for row, e in zip(rows, expected))


# -- the portal's defences ----------------------------------------------------------------------
@pytest.mark.parametrize("host, status", [("127.0.0.1:8501", 200), ("localhost:8501", 200), ("[::1]:8501", 200),
                                          ("LOCALHOST", 200), ("evil.example", 400),
                                          ("evil.example:8501", 400), ("127.0.0.1.evil.example", 400), ("", 400)])
def test_the_host_header_must_name_this_machine(site, host, status):
    r = site.http.get("/", headers={"host": host})
    assert r.status_code == status
    if status == 400:
        assert "answers only to" in r.text


def test_forms_without_the_csrf_token_or_from_another_site_are_refused(site):
    token = site.form().csrf()
    values = dict(SAMPLE_LAPTOP)
    for data, headers in (({**values}, {}), ({**values, "csrftoken": "0" * 64}, {}),
                          ({**values, "csrftoken": token}, {"origin": "http://evil.example"}),
                          ({**values, "csrftoken": token}, {"origin": "null"}),
                          ({**values, "csrftoken": token}, {"sec-fetch-site": "cross-site"})):
        r = site.http.post("/predict", data=data, headers=headers)
        assert r.status_code == 403, (data.get("csrftoken"), headers)
        assert "prediction" not in page(r).ids
    # The token belongs to the cookie: another browser (no cookie) cannot use it.
    with TestClient(site.http.app, base_url=PORTAL) as stranger:
        assert stranger.post("/predict", data={**values, "csrftoken": token}).status_code == 403
        r = stranger.post("/batch", data={"csrftoken": token}, files={"records": ("x.csv", b"a\n1\n", "text/csv")})
        assert r.status_code == 403
    ok = site.http.post("/predict", data={**values, "csrftoken": token},
                        headers={"origin": PORTAL, "sec-fetch-site": "same-origin"})
    assert ok.status_code == 200 and "prediction" in page(ok).ids


# -- the parts ----------------------------------------------------------------------------------
def test_form_fields_follow_the_model(col_tnf):
    fields = {f.name: f for f in form_fields(col_tnf)}
    assert fields["Inches"].kind == NUMBER and fields["Ram"].kind == TEXT
    assert "Dell" in fields["Company"].options and fields["Company"].default == "Dell"
    assert SELECT not in {f.kind for f in fields.values()}


@pytest.mark.parametrize("value, text", [(41.2733, "41.27"), (0.50494, "0.5049"), (1200.4, "1200"), (0.0, "0"),
                                         (-3.14159, "-3.142"), (123456.7, "123457"), (5.0, "5")])
def test_plain_numbers(value, text):
    assert plain_number(value) == text


def test_the_histogram_counts_every_value_once():
    values = [1.0, 2.0, 2.5, 3.0, 10.0, 10.0]
    chart = histogram(values)
    assert sum(b.count for b in chart.bars) == len(values)
    assert chart.bars[0].low == 1.0 and chart.bars[-1].high == pytest.approx(10.0)
    assert max(b.height for b in chart.bars) == pytest.approx(chart.baseline - 12)
    one = histogram([5.0, 5.0])
    assert len(one.bars) == 1 and one.bars[0].count == 2
    assert histogram([]) is None


@pytest.mark.parametrize("value, name", [("127.0.0.1:8501", "127.0.0.1"), ("[::1]:80", "::1"), ("::1", "::1"),
                                         ("LocalHost", "localhost")])
def test_host_names(value, name):
    assert host_name(value) == name


def test_safe_names():
    assert safe_name("C:\\Users\\me\\laptops.csv") == "laptops.csv"
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name('<b>"x".csv') == "_b_x_.csv"
    assert safe_name("..") == "records.csv"


def test_the_portal_command_needs_a_token(tmp_path, monkeypatch):
    monkeypatch.delenv("PPML_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["portal", "--server", "http://127.0.0.1:9", "--keys", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: no token: pass --token-file FILE or set PPML_TOKEN"


def test_nothing_in_the_page_is_unescaped(site):
    r = site.predict({**SAMPLE_LAPTOP, "Ram": '<script>alert("x")</script>'})
    assert "<script>" not in r.text and "&lt;script&gt;" in r.text
