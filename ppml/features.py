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
from dataclasses import dataclass
from typing import Callable, Sequence

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
    "FeatureStep",
    "LAPTOP_FEATURES",
    "PARSERS",
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


def check_frame(frame: pd.DataFrame, required: Sequence[str]) -> None:
    """Missing or duplicated input columns, naming every expected one."""
    present = list(frame.columns)
    expected = ", ".join(required)
    missing = [name for name in required if name not in present]
    if missing:
        raise InputError(f"missing column(s) {', '.join(repr(n) for n in missing)}; expected columns: {expected}")
    duplicated = [name for name in required if present.count(name) > 1]
    if duplicated:
        raise InputError(f"duplicate column(s) {', '.join(repr(n) for n in duplicated)}; "
                         f"expected columns: {expected}")


# ---------------------------------------------------------------------------------------------
# Generic columns: plain decimal numbers and categories
# ---------------------------------------------------------------------------------------------
NUMBER_EXPECTED = "expected a finite number, e.g. 42 or -3.5"
CATEGORY_EXPECTED = "expected a category (text)"

# Plain decimal numbers only: no "inf", "nan", "1_000", hexadecimal or thousands separators.
_NUMBER_RE = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")


def parse_number(value) -> float:
    """One raw value → a finite float: decimal text (surrounding blanks ignored) or a real
    number; NaN, infinities, blanks and booleans are refused."""
    if isinstance(value, str):
        text = value.strip()
        if not _NUMBER_RE.match(text):
            raise Unparseable
        number = float(text)
    elif isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise Unparseable
    else:
        number = float(value)
    if not math.isfinite(number):
        raise Unparseable
    return number


def parse_category(value) -> str:
    """A category: text stripped of surrounding blanks (integers and booleans as their text)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (bool, np.bool_, numbers.Integral)):
        return str(value if isinstance(value, (bool, np.bool_)) else int(value))
    raise Unparseable


def parse_numeric(series: pd.Series, column: str, expected: str = NUMBER_EXPECTED) -> np.ndarray:
    """A column of decimal text (or real numbers) → float64, refusing blanks, NaN and
    infinities with a :class:`~ppml.errors.FeatureParseError`."""
    if series.dtype.kind in "iuf":
        values = series.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            r = int(np.argmax(bad))
            raise FeatureParseError(plain_value(series.index[r]), column, plain_value(series.iloc[r]), expected)
        return values
    return _broadcast(*parse_distinct(series, column, parse_number, expected))


# ---------------------------------------------------------------------------------------------
# The feature step as data: named parsers from a fixed vocabulary
# ---------------------------------------------------------------------------------------------
#: Parsers of one raw column: name → (function of one value, what the error says is expected).
#: ``number`` also takes a column of real numbers as they are (:func:`parse_numeric`).
COLUMN_PARSERS: dict[str, tuple[Callable, str]] = {
    "number": (parse_number, NUMBER_EXPECTED),
    "category": (parse_category, CATEGORY_EXPECTED),
    "laptop.company": (_parse_label("Company"), _EXPECTED["Company"]),
    "laptop.type_name": (_parse_label("TypeName"), _EXPECTED["TypeName"]),
    "laptop.inches": (_parse_inches, _EXPECTED["Inches"]),
    "laptop.screen": (_parse_screen, _EXPECTED["ScreenResolution"]),
    "laptop.cpu": (_parse_cpu, _EXPECTED["Cpu"]),
    "laptop.ram": (_parse_ram, _EXPECTED["Ram"]),
    "laptop.memory": (_parse_memory, _EXPECTED["Memory"]),
    "laptop.gpu": (_parse_gpu, _EXPECTED["Gpu"]),
    "laptop.os": (_parse_os, _EXPECTED["OpSys"]),
    "laptop.weight": (_parse_weight, _EXPECTED["Weight"]),
}

#: The vocabulary of a feature step: parser name → (the column parser each of its source
#: columns is read with, which field of the first one's result it takes (None: the value
#: itself), whether the feature is text). ``laptop.ppi`` divides the screen's pixel diagonal by
#: its second source, the screen size.
PARSERS: dict[str, tuple[tuple, int | None, bool]] = {
    "number": (("number",), None, False),
    "category": (("category",), None, True),
    "laptop.company": (("laptop.company",), None, True),
    "laptop.type_name": (("laptop.type_name",), None, True),
    "laptop.cpu_brand": (("laptop.cpu",), 0, True),
    "laptop.gpu_brand": (("laptop.gpu",), 0, True),
    "laptop.os": (("laptop.os",), None, True),
    "laptop.ram_gb": (("laptop.ram",), None, False),
    "laptop.weight_kg": (("laptop.weight",), None, False),
    "laptop.touchscreen": (("laptop.screen",), 0, False),
    "laptop.ips": (("laptop.screen",), 1, False),
    "laptop.ppi": (("laptop.screen", "laptop.inches"), 2, False),
    "laptop.cpu_ghz": (("laptop.cpu",), 1, False),
    "laptop.gpu_number": (("laptop.gpu",), 1, False),
    "laptop.hdd_gb": (("laptop.memory",), 0, False),
    "laptop.ssd_gb": (("laptop.memory",), 1, False),
    "laptop.hybrid_gb": (("laptop.memory",), 2, False),
    "laptop.flash_gb": (("laptop.memory",), 3, False),
}


@dataclass(frozen=True)
class FeatureStep:
    """Raw records → named feature columns, described by data only: the raw ``inputs`` (in the
    order they are parsed, so the first bad column is the one reported) and ``features``, each
    ``(name, parser, source columns)`` with a parser of :data:`PARSERS`. A raw column is read by
    one column parser, whichever features use it."""

    inputs: tuple
    features: tuple

    @property
    def names(self) -> list:
        return [name for name, _, _ in self.features]

    @property
    def text_features(self) -> list:
        return [name for name, parser, _ in self.features if PARSERS[parser][2]]

    def column_parsers(self) -> dict:
        """``{raw column: column parser}``; ValueError if one column needs two parsers or an input
        is never used."""
        used = {}
        for name, parser, sources in self.features:
            for column, column_parser in zip(sources, PARSERS[parser][0]):
                if used.setdefault(column, column_parser) != column_parser:
                    raise ValueError(f"column {column!r} is read both as {used[column]!r} and as "
                                     f"{column_parser!r}")
        unused = [c for c in self.inputs if c not in used]
        if unused or set(used) - set(self.inputs):
            differ = ", ".join(map(repr, unused)) or "a source is not an input"
            raise ValueError(f"inputs and the features' source columns differ ({differ})")
        return used

    def __call__(self, raw: pd.DataFrame) -> pd.DataFrame:
        """The feature columns, with the input's index: text as object columns of ``str``,
        numbers as float64.

        Raises:
            InputError: an input column is missing (or duplicated).
            FeatureParseError: a value cannot be parsed; it names the index label of the first
                bad row of the first bad column (in ``inputs`` order).
        """
        check_frame(raw, self.inputs)
        parsers = self.column_parsers()
        parsed = {}
        for column in self.inputs:
            if parsers[column] == "number":
                parsed[column] = parse_numeric(raw[column], column)
            else:
                func, expected = COLUMN_PARSERS[parsers[column]]
                parsed[column] = parse_distinct(raw[column], column, func, expected)
        columns = {}
        for name, parser, sources in self.features:
            _, field, text = PARSERS[parser]
            dtype = object if text else np.float64
            first = parsed[sources[0]]
            values = first if isinstance(first, np.ndarray) else _broadcast(*first, field=field, dtype=dtype)
            if parser == "laptop.ppi":
                values = _ppi(raw, values, _broadcast(*parsed[sources[1]]), sources[1])
            columns[name] = pd.Series(values, index=raw.index, dtype=dtype)
        return pd.DataFrame(columns, index=raw.index, columns=self.names)

    def to_dict(self) -> dict:
        return {"inputs": list(self.inputs),
                "features": [{"name": n, "parser": p, "columns": list(s)} for n, p, s in self.features]}


def _ppi(raw: pd.DataFrame, diagonal: np.ndarray, inches: np.ndarray, column: str) -> np.ndarray:
    """Pixels per inch: the pixel diagonal divided by the screen size."""
    with np.errstate(over="ignore"):
        ppi = diagonal / inches
    if len(ppi) and not np.isfinite(ppi).all():
        # Only reachable with absurd inputs (e.g. 1e-320 inches): still a parse failure.
        position = int(np.argmax(~np.isfinite(ppi)))
        raise FeatureParseError(plain_value(raw.index[position]), column,
                                plain_value(raw[column].iloc[position]), COLUMN_PARSERS["laptop.inches"][1])
    return ppi


#: The laptop model's feature step.
LAPTOP_FEATURES = FeatureStep(RAW_COLUMNS, (
    ("Company", "laptop.company", ("Company",)),
    ("TypeName", "laptop.type_name", ("TypeName",)),
    ("cpu_brand", "laptop.cpu_brand", ("Cpu",)),
    ("gpu_brand", "laptop.gpu_brand", ("Gpu",)),
    ("os", "laptop.os", ("OpSys",)),
    ("ram_gb", "laptop.ram_gb", ("Ram",)),
    ("weight_kg", "laptop.weight_kg", ("Weight",)),
    ("touchscreen", "laptop.touchscreen", ("ScreenResolution",)),
    ("ips", "laptop.ips", ("ScreenResolution",)),
    ("ppi", "laptop.ppi", ("ScreenResolution", "Inches")),
    ("cpu_ghz", "laptop.cpu_ghz", ("Cpu",)),
    ("gpu_number", "laptop.gpu_number", ("Gpu",)),
    ("hdd_gb", "laptop.hdd_gb", ("Memory",)),
    ("ssd_gb", "laptop.ssd_gb", ("Memory",)),
    ("hybrid_gb", "laptop.hybrid_gb", ("Memory",)),
    ("flash_gb", "laptop.flash_gb", ("Memory",)),
))


def engineer_features(raw: pd.DataFrame) -> pd.DataFrame:
    """Parse the raw laptop columns into :data:`FEATURE_COLUMNS` (:data:`LAPTOP_FEATURES`).

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
    if not isinstance(raw, pd.DataFrame):
        raise TypeError(f"engineer_features expects a pandas DataFrame, got {type(raw).__name__}")
    return LAPTOP_FEATURES(raw)
