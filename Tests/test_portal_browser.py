"""The portal as a person uses it: ``python -m ppml serve`` and ``python -m ppml portal`` on
127.0.0.1 (ephemeral ports, a client token, 1024-bit keys with ``--allow-weak-key``), driven by
headless Chromium (Selenium with the system's chromedriver, so nothing is downloaded).

A laptop record is typed field by field and submitted, a 20-record CSV is uploaded through the
file input; the numbers on the page must equal the plaintext model's to the cent, the browser
console must stay free of errors and the browser must request nothing but the portal. The page
also works with JavaScript turned off. Screenshots go to ``/tmp/portal-shots/``.

Skipped, with the reason, when Chromium or its driver is missing (``.ci/run`` installs them from
the OS packages). Every process started here is stopped by its PID; every wait is bounded.
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, PpmlServer
from ppml.display import readable
from ppml.records import SAMPLE_LAPTOP

CHROMIUM = os.environ.get("PPML_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PPML_CHROMEDRIVER", "/usr/bin/chromedriver")
SHOTS = Path("/tmp/portal-shots")
PY = sys.executable
WAIT = 60  # seconds any page may take

webdriver = pytest.importorskip("selenium.webdriver", reason="the browser tests need selenium (the test extra)")
if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    pytest.skip(f"no headless Chromium here ({CHROMIUM} and {CHROMEDRIVER}; on Debian: apt-get install chromium "
                "chromium-driver, as .ci/run does)", allow_module_level=True)

from selenium.webdriver.chrome.service import Service as DriverService  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The company's service (client acme) and the customer's portal over it, which fetches the
    model from the service and creates a 1024-bit key pair."""
    folder = tmp_path_factory.mktemp("portal-live")
    out = subprocess.run([PY, "-m", "ppml", "clients", "add", "acme", "--db", "clients.db"], cwd=folder,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    token = folder / "acme.token"
    token.write_text(out.stdout.strip().splitlines()[-1] + "\n")
    os.chmod(token, 0o600)
    started = []
    try:
        service = PpmlServer(folder, "serve", "--model", str(ROOT), "--db", "clients.db", "--host", "127.0.0.1",
                          "--port", "0", "--workers", "1", "--allow-weak-key")
        started.append(service)
        portal = PpmlServer(folder, "portal", "--server", service.url, "--token-file", str(token), "--keys", "keys",
                         "--key-size", "1024", "--allow-weak-key", "--host", "127.0.0.1", "--port", "0")
        started.append(portal)
        yield dict(folder=folder, url=portal.url, server=service.url)
    finally:
        for process in reversed(started):
            process.stop()


def chromium(tmp_path: Path, javascript: bool = True):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1000", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(options=options, service=DriverService(CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT)
    return driver


@pytest.fixture
def browser(tmp_path):
    driver = chromium(tmp_path)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver, name: str) -> None:
    """The whole page as a PNG in /tmp/portal-shots/."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(int(height) + 40, 800), 6000))
    driver.save_screenshot(str(SHOTS / name))
    driver.set_window_size(1280, 1000)


def console_errors(driver) -> list:
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def foreign_requests(driver, origin: str) -> list:
    """Network requests to anything but ``origin`` (the browser's own chrome:// pages aside)."""
    return [url for url in requested_urls(driver)
            if not url.startswith(origin + "/") and not url.startswith(("chrome:", "chrome-untrusted:", "about:",
                                                                        "data:"))]


def requested_urls(driver) -> list:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def price_of(pipeline, record: dict) -> float:
    return math.exp(pipeline.predict(pd.DataFrame([record]))[0])


def assert_to_the_cent(shown: str, expected: float):
    assert abs(float(shown.replace(",", "")) - expected) < 0.005 + 1e-9 * expected, (shown, expected)


def type_record(driver, record: dict) -> None:
    for name, value in record.items():
        field = driver.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
        assert field.get_attribute("value") == value


def submit(driver, form_action: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f'form[action="{form_action}"] button[type="submit"]').click()


def test_a_record_typed_into_the_form_is_priced_to_the_cent(site, browser, pipeline, bundled_raw):
    browser.get(site["url"] + "/")
    assert browser.find_element(By.NAME, "Ram").get_attribute("value") == SAMPLE_LAPTOP["Ram"]  # pre-filled
    record = {c: bundled_raw.iloc[42][c] for c in SAMPLE_LAPTOP}  # one public-format laptop record
    type_record(browser, record)
    screenshot(browser, "form.png")
    submit(browser, "/predict")
    shown = WebDriverWait(browser, WAIT).until(EC.presence_of_element_located((By.ID, "prediction"))).text
    expected = price_of(pipeline, record)
    assert shown == readable(expected)
    assert_to_the_cent(shown, expected)
    view = browser.find_element(By.ID, "company-view").text
    assert "1 record(s)" in view and re.search(r"sha256:[0-9a-f]{64}", view)
    for name, value in record.items():  # the entered values are kept
        assert browser.find_element(By.NAME, name).get_attribute("value") == value
    screenshot(browser, "single.png")
    assert console_errors(browser) == []
    assert foreign_requests(browser, site["url"]) == []


def test_a_20_record_csv_uploaded_gives_the_plaintext_models_prices(site, browser, pipeline, bundled_raw,
                                                                   tmp_path):
    raw = bundled_raw.iloc[200:220].reset_index(drop=True)
    path = tmp_path / "twenty laptops.csv"
    raw.to_csv(path, index=False)
    browser.get(site["url"] + "/")
    browser.find_element(By.CSS_SELECTOR, 'input[type="file"]').send_keys(str(path))
    submit(browser, "/batch")
    table = WebDriverWait(browser, WAIT).until(EC.presence_of_element_located((By.ID, "results")))
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    expected = [math.exp(v) for v in pipeline.predict(raw)]
    assert len(rows) == 20
    for row, price in zip(rows, expected):
        cells = row.find_elements(By.TAG_NAME, "td")
        assert cells[-1].text == readable(price)
        assert_to_the_cent(cells[-1].text, price)
    link = browser.find_element(By.ID, "download").get_attribute("href")
    assert link.startswith(site["url"] + "/download/")
    with urllib.request.urlopen(link, timeout=WAIT) as r:
        got = pd.read_csv(r)
    assert list(got.columns) == ["id", "prediction"] and len(got) == 20
    assert max(abs(g - e) / e for g, e in zip(got["prediction"], expected)) <= 1e-9
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg rect.bar")) >= 2
    assert browser.find_element(By.ID, "company-view").is_displayed()
    screenshot(browser, "batch.png")
    assert console_errors(browser) == []
    assert foreign_requests(browser, site["url"]) == []


def test_invalid_input_is_explained_next_to_the_form(site, browser):
    browser.get(site["url"] + "/")
    type_record(browser, {"Ram": "lots"})
    submit(browser, "/predict")
    error = WebDriverWait(browser, WAIT).until(EC.presence_of_element_located((By.ID, "error")))
    assert error.text == "Error: row 0, column 'Ram': cannot parse 'lots' (expected e.g. '8GB')"
    assert browser.find_element(By.NAME, "Ram").get_attribute("value") == "lots"
    assert browser.find_elements(By.ID, "prediction") == []
    screenshot(browser, "error.png")
    assert console_errors(browser) == []


def test_the_portal_works_with_javascript_turned_off(site, tmp_path, pipeline):
    driver = chromium(tmp_path, javascript=False)
    try:
        driver.get(site["url"] + "/")
        submit(driver, "/predict")  # the pre-filled sample laptop
        shown = WebDriverWait(driver, WAIT).until(EC.presence_of_element_located((By.ID, "prediction"))).text
        assert shown == readable(price_of(pipeline, SAMPLE_LAPTOP)) == "62,996.92"
        assert console_errors(driver) == []
    finally:
        driver.quit()
