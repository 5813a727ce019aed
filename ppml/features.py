"""Turn raw laptop records (the public laptop-price CSV layout) into model features.

The raw columns are free text such as ``"8GB"``, ``"1.37kg"``,
``"128GB SSD +  1TB HDD"`` or ``"IPS Panel Full HD / Touchscreen 1920x1080"``. The model
(and the encrypted inference built on it) needs a fixed set of numeric columns plus a few
low-cardinality categorical ones, so this module parses the text once, strictly:

* anything that cannot be parsed raises :class:`~ppml.errors.FeatureParseError` naming the
  row label, the column and the offending value -- values are never clipped or defaulted,
  because a silently wrong feature would be encrypted and scored as if it were right;
* open vocabularies (CPU vendor, GPU vendor, operating system) are folded into small closed
  category sets, with an explicit ``"Other"`` bucket for vendors the model has not seen.

Parsing is done once per *distinct* string of a column (real batches hold few distinct
strings), then broadcast to the rows with integer codes, so 100k-row batches are cheap.

Range checking against :data:`DOMAIN_BOUNDS` is *not* done here: the encoder that needs the
bounds raises its own error. This module only rejects values that are not physically
meaningful at all (non-positive sizes, clocks, weights, screen sizes; NaN; infinity).
"""
from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from .errors import FeatureParseError, InputError

__all__ = [
    "RAW_COLUMNS",
    "CATEGORICAL_FEATURES",
    "NUMERIC_FEATURES",
    "FEATURE_COLUMNS",
    "DOMAIN_BOUNDS",
    "CPU_BRANDS",
    "GPU_BRANDS",
    "OS_CATEGORIES",
    "engineer_features",
]

RAW_COLUMNS: tuple[str, ...] = (
    "Company", "TypeName", "Inches", "ScreenResolution", "Cpu",
    "Ram", "Memory", "Gpu", "OpSys", "Weight",
)
CATEGORICAL_FEATURES: tuple[str, ...] = ("Company", "TypeName", "cpu_brand", "gpu_brand", "os")
NUMERIC_FEATURES: tuple[str, ...] = (
    "ram_gb", "weight_kg", "touchscreen", "ips", "ppi", "cpu_ghz", "gpu_number",
    "hdd_gb", "ssd_gb", "hybrid_gb", "flash_gb",
)
FEATURE_COLUMNS: tuple[str, ...] = CATEGORICAL_FEATURES + NUMERIC_FEATURES

#: Generous *physical* bounds (inclusive) of every numeric feature. They are deliberately
#: wider than any real laptop, and independent of any training set, so that publishing them
#: (the encrypted-inference protocol needs fixed-point ranges) reveals nothing about the data.
DOMAIN_BOUNDS: dict[str, tuple[float, float]] = {
    "ram_gb": (0.0, 4096.0),
    "weight_kg": (0.0, 50.0),
    "touchscreen": (0.0, 1.0),
    "ips": (0.0, 1.0),
    "ppi": (0.0, 2000.0),
    "cpu_ghz": (0.0, 10.0),
    "gpu_number": (0.0, 100000.0),
    "hdd_gb": (0.0, 100000.0),
    "ssd_gb": (0.0, 100000.0),
    "hybrid_gb": (0.0, 100000.0),
    "flash_gb": (0.0, 100000.0),
}

#: Every value ``cpu_brand`` can take.
CPU_BRANDS: tuple[str, ...] = (
    "Intel Core i7", "Intel Core i5", "Intel Core i3", "Other Intel", "AMD", "Other",
)
#: Every value ``gpu_brand`` can take.
GPU_BRANDS: tuple[str, ...] = ("Intel", "Nvidia", "AMD", "ARM", "Other")
#: Every value ``os`` can take.
OS_CATEGORIES: tuple[str, ...] = ("Windows", "Mac", "Linux", "Chrome OS", "No OS", "Other")

# Canonical spellings of the companies and type names of the public data set, so that
# "apple" or "ULTRABOOK" land in the same one-hot column as "Apple" / "Ultrabook".
# Names not listed here are kept as given (whitespace-normalised).
_KNOWN_COMPANIES = (
    "Acer", "Apple", "Asus", "Chuwi", "Dell", "Fujitsu", "Google", "HP", "Huawei", "LG",
    "Lenovo", "MSI", "Mediacom", "Microsoft", "Razer", "Samsung", "Toshiba", "Vero", "Xiaomi",
)
_KNOWN_TYPENAMES = (
    "2 in 1 Convertible", "Gaming", "Netbook", "Notebook", "Ultrabook", "Workstation",
)
_CANONICAL = {
    "Company": {name.lower(): name for name in _KNOWN_COMPANIES},
    "TypeName": {name.lower(): name for name in _KNOWN_TYPENAMES},
}
_GPU_VENDORS = {"intel": "Intel", "nvidia": "Nvidia", "amd": "AMD", "arm": "ARM"}

_NUM = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_RAM_RE = re.compile(rf"^{_NUM}\s*gb$", re.IGNORECASE)
_WEIGHT_RE = re.compile(rf"^{_NUM}\s*kgs?$", re.IGNORECASE)
_INCHES_RE = re.compile(rf'^{_NUM}\s*(?:"|in|inch|inches)?$', re.IGNORECASE)
_RES_RE = re.compile(r"(?<![0-9])([0-9]+)\s*[x×]\s*([0-9]+)(?![0-9])", re.IGNORECASE)
_TOUCH_RE = re.compile(r"touch\s*screen", re.IGNORECASE)
_IPS_RE = re.compile(r"(?<![a-z])ips(?![a-z])", re.IGNORECASE)
_GHZ_RE = re.compile(rf"(?<![0-9.]){_NUM}\s*ghz(?![a-z])", re.IGNORECASE)
_CORE_RE = re.compile(r"^intel\s+core\s+i([357])(?![0-9a-z])", re.IGNORECASE)
_MEM_PART_RE = re.compile(
    rf"^{_NUM}\s*(gb|tb)\s*(ssd|hdd|hybrid|flash\s+storage|flash|emmc)$", re.IGNORECASE
)
_UNICODE_ESCAPE_RE = re.compile(r"<U\+[0-9A-Fa-f]{1,6}>")
_GPU_MEMORY_RE = re.compile(r"(?<![0-9])[0-9]+\s*[gm]b(?![a-z])", re.IGNORECASE)
_DIGITS_RE = re.compile(r"[0-9]+")
_MAX_GPU_DIGITS = 9

_EXPECTED = {
    "Company": "expected a manufacturer name, e.g. 'Dell'",
    "TypeName": "expected a laptop type, e.g. 'Notebook'",
    "Inches": "expected a positive screen diagonal in inches, e.g. 15.6",
    "ScreenResolution": "expected e.g. 'IPS Panel Full HD 1920x1080'",
    "Cpu": "expected e.g. 'Intel Core i5 7200U 2.5GHz'",
    "Ram": "expected e.g. '8GB'",
    "Memory": "expected e.g. '256GB SSD' or '128GB SSD +  1TB HDD'",
    "Gpu": "expected e.g. 'Intel HD Graphics 620'",
    "OpSys": "expected e.g. 'Windows 10'",
    "Weight": "expected e.g. '1.37kg'",
}


class Unparseable(Exception):
    """Internal signal from a per-value parser; turned into FeatureParseError with the row."""


def _text(value) -> str:
    """Return ``value`` as whitespace-normalised text; reject non-strings and blanks.

    Numbers are rejected on purpose: ``8`` in the Ram column could mean GB or anything else.
    """
    if not isinstance(value, str):
        raise Unparseable
    text = " ".join(value.split())
    if not text:
        raise Unparseable
    return text


def _positive(text: str) -> float:
    number = float(text)
    if not (math.isfinite(number) and number > 0):
        raise Unparseable
    return number


def _parse_label(column: str) -> Callable[[object], str]:
    canonical = _CANONICAL[column]

    def parse(value) -> str:
        text = _text(value)
        return canonical.get(text.lower(), text)

    return parse


def _parse_inches(value) -> float:
    """Screen diagonal: a number (the CSV layout) or text such as ``'15.6'`` / ``'15.6"'``."""
    if isinstance(value, (bool, np.bool_)):
        raise Unparseable
    if isinstance(value, numbers.Real):
        number = float(value)
        if not (math.isfinite(number) and number > 0):
            raise Unparseable
        return number
    match = _INCHES_RE.match(_text(value))
    if not match:
        raise Unparseable
    return _positive(match.group(1))


def _parse_screen(value) -> tuple[float, float, float]:
    """``(touchscreen, ips, diagonal_pixels)`` from e.g. ``'IPS Panel ... / Touchscreen 1920x1080'``."""
    text = _text(value)
    matches = _RES_RE.findall(text)
    if len(matches) != 1:
        raise Unparseable
    width, height = (_positive(part) for part in matches[0])
    touch = 1.0 if _TOUCH_RE.search(text) else 0.0
    ips = 1.0 if _IPS_RE.search(text) else 0.0
    return touch, ips, math.hypot(width, height)


def _parse_cpu(value) -> tuple[str, float]:
    """``(cpu_brand, clock_ghz)``; the clock is the first ``<number>GHz`` figure (base clock)."""
    text = _text(value)
    match = _GHZ_RE.search(text)
    if not match:
        raise Unparseable
    ghz = _positive(match.group(1))
    core = _CORE_RE.match(text)
    lowered = text.lower()
    if core:
        brand = f"Intel Core i{core.group(1)}"
    elif lowered.startswith("intel"):
        brand = "Other Intel"
    elif lowered.startswith("amd"):
        brand = "AMD"
    else:
        brand = "Other"
    return brand, ghz


def _parse_ram(value) -> float:
    match = _RAM_RE.match(_text(value))
    if not match:
        raise Unparseable
    return _positive(match.group(1))


def _parse_weight(value) -> float:
    match = _WEIGHT_RE.match(_text(value))
    if not match:
        raise Unparseable
    return _positive(match.group(1))


_MEMORY_KIND = {"ssd": 1, "hdd": 0, "hybrid": 2, "flash": 3, "emmc": 3}


def _parse_memory(value) -> tuple[float, float, float, float]:
    """``(hdd_gb, ssd_gb, hybrid_gb, flash_gb)`` summed over the ``+``-separated parts.

    ``1TB`` and ``1.0TB`` count as 1000 GB (the decimal unit drives makers use);
    ``Flash Storage`` (and eMMC) count as flash.
    """
    text = _text(value)
    totals = [0.0, 0.0, 0.0, 0.0]
    for part in text.split("+"):
        match = _MEM_PART_RE.match(part.strip())
        if not match:
            raise Unparseable
        size = _positive(match.group(1)) * (1000.0 if match.group(2).lower() == "tb" else 1.0)
        kind = match.group(3).lower().split()[0]
        totals[_MEMORY_KIND[kind]] += size
    return totals[0], totals[1], totals[2], totals[3]


def _parse_gpu(value) -> tuple[str, float]:
    """``(gpu_brand, gpu_number)``.

    ``gpu_brand`` is the first word (vendor), canonicalised to Intel / Nvidia / AMD / ARM;
    any other vendor becomes ``"Other"``.

    ``gpu_number`` is the model number: the numerically largest run of ASCII digits in the
    name, after removing text-escaped characters such as ``<U+039C>`` and video-memory sizes
    such as ``4GB``; 0 when the name has no digits. So ``GTX 1050 Ti`` -> 1050,
    ``HD Graphics 620`` -> 620, ``940MX`` -> 940, ``Radeon R5 M430`` -> 430,
    ``Mali T860 MP4`` -> 860, ``Intel HD Graphics`` -> 0, ``Iris Pro Graphics`` -> 0.
    Within a vendor a larger number roughly means a newer or faster part, which is all a
    linear model can use. Runs longer than 9 digits are rejected as not being model numbers.
    """
    text = _text(value)
    brand = _GPU_VENDORS.get(text.split(" ", 1)[0].lower(), "Other")
    cleaned = _GPU_MEMORY_RE.sub(" ", _UNICODE_ESCAPE_RE.sub(" ", text))
    runs = _DIGITS_RE.findall(cleaned)
    if any(len(run.lstrip("0")) > _MAX_GPU_DIGITS for run in runs):
        raise Unparseable
    number = float(max((int(run) for run in runs), default=0))
    return brand, number


def _parse_os(value) -> str:
    """Fold ``OpSys`` into :data:`OS_CATEGORIES`.

    ``Windows*`` (10, 10 S, 7, ...) -> Windows; ``macOS`` / ``Mac OS X`` / ``Mac*`` -> Mac;
    ``Linux*`` -> Linux; ``Chrome OS`` -> Chrome OS; ``No OS`` / ``None`` -> No OS;
    anything else (Android, ...) -> Other.
    """
    lowered = _text(value).lower()
    compact = lowered.replace(" ", "")
    if lowered.startswith("windows"):
        return "Windows"
    if lowered.startswith("mac"):
        return "Mac"
    if lowered.startswith("linux"):
        return "Linux"
    if compact.startswith("chromeos"):
        return "Chrome OS"
    if compact in ("noos", "none"):
        return "No OS"
    return "Other"


def parse_distinct(series: pd.Series, column: str, parse: Callable, expected: str) -> tuple[np.ndarray, list]:
    """Parse each distinct value of ``series`` once (batches repeat values); return ``(codes,
    parsed_uniques)`` so callers broadcast with ``table[codes]``.

    Distinct values are visited in order of first appearance, so the error names the first bad
    row (its index label), the column and the value; NaN/None/pd.NA are never parseable.
    """
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    codes = np.asarray(codes)
    first_bad = int(np.argmax(codes < 0)) if len(codes) and codes.min() < 0 else None
    parsed = []
    for k, value in enumerate(uniques):
        try:
            parsed.append(parse(value))
        except (Unparseable, ValueError, OverflowError, TypeError):
            position = int(np.argmax(codes == k))
            if first_bad is None or position < first_bad:
                first_bad = position
            break
    if first_bad is not None:
        raise FeatureParseError(plain_value(series.index[first_bad]), column,
                                plain_value(series.iloc[first_bad]), expected)
    return codes, parsed


def plain_value(value):
    """numpy scalars as Python values, so messages read ``inf`` rather than ``np.float64(inf)``."""
    return value.item() if isinstance(value, np.generic) else value


def _broadcast(codes: np.ndarray, parsed: list, field: int | None = None,
               dtype=np.float64) -> np.ndarray:
    values = parsed if field is None else [item[field] for item in parsed]
    table = np.array(values, dtype=dtype) if values else np.empty(0, dtype=dtype)
    return table[codes]


def _check_columns(raw: pd.DataFrame) -> None:
    if not isinstance(raw, pd.DataFrame):
        raise TypeError(f"engineer_features expects a pandas DataFrame, got {type(raw).__name__}")
    present = list(raw.columns)
    missing = [name for name in RAW_COLUMNS if name not in present]
    expected = ", ".join(RAW_COLUMNS)
    if missing:
        names = ", ".join(repr(name) for name in missing)
        raise InputError(f"missing column(s) {names}; expected columns: {expected}")
    duplicated = [name for name in RAW_COLUMNS if present.count(name) > 1]
    if duplicated:
        names = ", ".join(repr(name) for name in duplicated)
        raise InputError(f"duplicate column(s) {names}; expected columns: {expected}")


def engineer_features(raw: pd.DataFrame) -> pd.DataFrame:
    """Parse the raw laptop columns into :data:`FEATURE_COLUMNS`.

    Args:
        raw: a DataFrame with at least :data:`RAW_COLUMNS`; other columns (Price, ids, the
            CSV's unnamed index) are ignored.

    Returns:
        A new DataFrame with exactly ``CATEGORICAL_FEATURES + NUMERIC_FEATURES`` (in that
        order) and the input's index. Categoricals are object columns of ``str``; numerics
        are float64:

        * ``ram_gb``: ``Ram`` in GB; ``weight_kg``: ``Weight`` in kg;
        * ``touchscreen`` / ``ips``: 0/1 flags from ``ScreenResolution``;
        * ``ppi``: pixel diagonal of the ``WxH`` resolution divided by ``Inches``;
        * ``cpu_brand``: one of :data:`CPU_BRANDS`; ``cpu_ghz``: the ``GHz`` clock of ``Cpu``;
        * ``gpu_brand`` / ``gpu_number``: see :func:`_parse_gpu`;
        * ``hdd_gb`` / ``ssd_gb`` / ``hybrid_gb`` / ``flash_gb``: ``Memory`` per kind, in GB;
        * ``os``: one of :data:`OS_CATEGORIES` (see :func:`_parse_os`).

    Raises:
        InputError: a required column is missing (or duplicated).
        FeatureParseError: a value cannot be parsed (including NaN, blanks, infinities,
            non-positive sizes); it names the index label of the first bad row.
    """
    _check_columns(raw)
    parsed = {
        column: parse_distinct(raw[column], column, parser, _EXPECTED[column])
        for column, parser in (
            ("Company", _parse_label("Company")),
            ("TypeName", _parse_label("TypeName")),
            ("Inches", _parse_inches),
            ("ScreenResolution", _parse_screen),
            ("Cpu", _parse_cpu),
            ("Ram", _parse_ram),
            ("Memory", _parse_memory),
            ("Gpu", _parse_gpu),
            ("OpSys", _parse_os),
            ("Weight", _parse_weight),
        )
    }

    def cat(column: str, field: int | None = None) -> np.ndarray:
        return _broadcast(*parsed[column], field=field, dtype=object)

    def num(column: str, field: int | None = None) -> np.ndarray:
        return _broadcast(*parsed[column], field=field)

    inches = num("Inches")
    with np.errstate(over="ignore"):
        ppi = num("ScreenResolution", 2) / inches
    if len(ppi) and not np.isfinite(ppi).all():
        # Only reachable with absurd inputs (e.g. 1e-320 inches): still a parse failure.
        position = int(np.argmax(~np.isfinite(ppi)))
        raise FeatureParseError(plain_value(raw.index[position]), "Inches",
                                plain_value(raw["Inches"].iloc[position]), _EXPECTED["Inches"])

    columns = {
        "Company": cat("Company"),
        "TypeName": cat("TypeName"),
        "cpu_brand": cat("Cpu", 0),
        "gpu_brand": cat("Gpu", 0),
        "os": cat("OpSys"),
        "ram_gb": num("Ram"),
        "weight_kg": num("Weight"),
        "touchscreen": num("ScreenResolution", 0),
        "ips": num("ScreenResolution", 1),
        "ppi": ppi,
        "cpu_ghz": num("Cpu", 1),
        "gpu_number": num("Gpu", 1),
        "hdd_gb": num("Memory", 0),
        "ssd_gb": num("Memory", 1),
        "hybrid_gb": num("Memory", 2),
        "flash_gb": num("Memory", 3),
    }
    out = pd.DataFrame(
        {
            name: pd.Series(values, index=raw.index,
                            dtype=object if name in CATEGORICAL_FEATURES else np.float64)
            for name, values in columns.items()
        },
        index=raw.index,
    )
    return out[list(FEATURE_COLUMNS)]
