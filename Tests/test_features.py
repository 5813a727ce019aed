"""Tests of ppml.features: exact parses of the public file's tricky formats, errors, bounds."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import PUBLIC_LAPTOPS
from ppml.errors import FeatureParseError, InputError
from ppml.features import (
    CATEGORICAL_FEATURES,
    CPU_BRANDS,
    DOMAIN_BOUNDS,
    GPU_BRANDS,
    NUMERIC_FEATURES,
    OS_CATEGORIES,
    RAW_COLUMNS,
    engineer_features,
)

PUBLIC_CSV = PUBLIC_LAPTOPS

BASE = {
    "Company": "HP",
    "TypeName": "Notebook",
    "Inches": 15.6,
    "ScreenResolution": "Full HD 1920x1080",
    "Cpu": "Intel Core i5 7200U 2.5GHz",
    "Ram": "8GB",
    "Memory": "256GB SSD",
    "Gpu": "Intel HD Graphics 620",
    "OpSys": "Windows 10",
    "Weight": "1.86kg",
}


def frame(*rows: dict, index=None) -> pd.DataFrame:
    """Raw records: BASE overridden by each dict in ``rows``."""
    return pd.DataFrame([{**BASE, **row} for row in rows], index=index)


def one(**overrides) -> pd.Series:
    return engineer_features(frame(overrides)).iloc[0]


# --------------------------------------------------------------------------- exact parses

@pytest.mark.parametrize("value, expected", [
    ("8GB", 8.0), ("16GB", 16.0), ("64GB", 64.0), (" 4 gb ", 4.0), ("2GB", 2.0),
])
def test_ram(value, expected):
    assert one(Ram=value)["ram_gb"] == expected


@pytest.mark.parametrize("value, expected", [
    ("1.37kg", 1.37), ("1.37 kg", 1.37), ("2kg", 2.0), ("0.920kg", 0.92), ("4.7KG", 4.7),
    ("1.25kgs", 1.25),
])
def test_weight(value, expected):
    assert one(Weight=value)["weight_kg"] == expected


@pytest.mark.parametrize("value, hdd, ssd, hybrid, flash", [
    ("128GB SSD +  1TB HDD", 1000, 128, 0, 0),
    ("1.0TB Hybrid", 0, 0, 1000, 0),
    ("512GB SSD +  1.0TB Hybrid", 0, 512, 1000, 0),
    ("256GB SSD +  256GB SSD", 0, 512, 0, 0),
    ("64GB Flash Storage +  1TB HDD", 1000, 0, 0, 64),
    ("32GB Flash Storage", 0, 0, 0, 32),
    ("1TB HDD +  1TB HDD", 2000, 0, 0, 0),
    ("508GB Hybrid", 0, 0, 508, 0),
    ("1.0TB HDD", 1000, 0, 0, 0),
    ("128gb ssd+1tb hdd", 1000, 128, 0, 0),
])
def test_memory(value, hdd, ssd, hybrid, flash):
    row = one(Memory=value)
    assert (row["hdd_gb"], row["ssd_gb"], row["hybrid_gb"], row["flash_gb"]) == (
        hdd, ssd, hybrid, flash)


@pytest.mark.parametrize("screen, inches, touch, ips, width, height", [
    ("IPS Panel Full HD / Touchscreen 1920x1080", 15.6, 1, 1, 1920, 1080),
    ("IPS Panel Retina Display 2560x1600", 13.3, 0, 1, 2560, 1600),
    ("Touchscreen / 4K Ultra HD 3840x2160", 15.6, 1, 0, 3840, 2160),
    ("IPS Panel Touchscreen 2400x1600", 12.3, 1, 1, 2400, 1600),
    ("Quad HD+ / Touchscreen 3200x1800", 13.3, 1, 0, 3200, 1800),
    ("1366x768", 11.6, 0, 0, 1366, 768),
    ("Full HD 1920x1080", "14.0", 0, 0, 1920, 1080),  # Inches may arrive as text
])
def test_screen(screen, inches, touch, ips, width, height):
    row = one(ScreenResolution=screen, Inches=inches)
    assert row["touchscreen"] == touch and row["ips"] == ips
    assert row["ppi"] == pytest.approx(math.hypot(width, height) / float(inches), rel=1e-12)


@pytest.mark.parametrize("cpu, brand, ghz", [
    ("Intel Core i5 7200U 2.5GHz", "Intel Core i5", 2.5),
    ("Intel Core i7 6500U 2.50GHz", "Intel Core i7", 2.5),
    ("Intel Core i3 6006U 2GHz", "Intel Core i3", 2.0),
    ("Intel Core M m3 1.2GHz", "Other Intel", 1.2),
    ("Intel Atom x5-Z8350 1.44GHz", "Other Intel", 1.44),
    ("Intel Xeon E3-1505M V6 3GHz", "Other Intel", 3.0),
    ("AMD A9-Series 9420 3GHz", "AMD", 3.0),
    ("Samsung Cortex A72&A53 2.0GHz", "Other", 2.0),
    ("intel core i7 8550u 1.8 ghz", "Intel Core i7", 1.8),
])
def test_cpu(cpu, brand, ghz):
    row = one(Cpu=cpu)
    assert (row["cpu_brand"], row["cpu_ghz"]) == (brand, ghz)


@pytest.mark.parametrize("gpu, brand, number", [
    ("Nvidia GeForce GTX 1050 Ti", "Nvidia", 1050),
    ("Nvidia GeForce GTX1050 Ti", "Nvidia", 1050),
    ("Nvidia GeForce GTX 960<U+039C>", "Nvidia", 960),
    ("Nvidia GeForce 930MX ", "Nvidia", 930),
    ("Nvidia GeForce 940MX", "Nvidia", 940),
    ("Intel HD Graphics 620", "Intel", 620),
    ("Intel HD Graphics", "Intel", 0),
    ("Intel Iris Pro Graphics", "Intel", 0),
    ("AMD Radeon R5 M430", "AMD", 430),
    ("AMD R17M-M1-70", "AMD", 70),
    ("ARM Mali T860 MP4", "ARM", 860),
    ("Nvidia Quadro M1200", "Nvidia", 1200),
    ("Nvidia GeForce GTX 1060 6GB", "Nvidia", 1060),
    ("Qualcomm Adreno 618", "Other", 618),
])
def test_gpu(gpu, brand, number):
    row = one(Gpu=gpu)
    assert (row["gpu_brand"], row["gpu_number"]) == (brand, number)


@pytest.mark.parametrize("opsys, expected", [
    ("Windows 10", "Windows"), ("Windows 10 S", "Windows"), ("Windows 7", "Windows"),
    ("macOS", "Mac"), ("Mac OS X", "Mac"), ("Linux", "Linux"), ("Chrome OS", "Chrome OS"),
    ("No OS", "No OS"), ("Android", "Other"), ("  windows   10 ", "Windows"),
])
def test_os(opsys, expected):
    assert one(OpSys=opsys)["os"] == expected


def test_company_and_type_are_canonicalised():
    row = one(Company=" apple ", TypeName="2 in 1  convertible")
    assert (row["Company"], row["TypeName"]) == ("Apple", "2 in 1 Convertible")
    assert one(Company="Framework")["Company"] == "Framework"


# --------------------------------------------------------------------------- shape of output

def test_output_columns_index_dtypes_and_ignored_columns():
    raw = frame({}, {"Ram": "16GB"}, index=[7, 3])
    raw["Price"] = [1.0, 2.0]
    raw.insert(0, "Unnamed: 0", [0, 1])
    out = engineer_features(raw)
    assert tuple(out.columns) == CATEGORICAL_FEATURES + NUMERIC_FEATURES
    assert list(out.index) == [7, 3]
    assert out.loc[3, "ram_gb"] == 16.0
    for column in NUMERIC_FEATURES:
        assert out[column].dtype == np.float64
    for column in CATEGORICAL_FEATURES:
        assert all(type(v) is str for v in out[column])
    assert list(raw.columns)[0] == "Unnamed: 0"  # input untouched


def test_empty_frame():
    out = engineer_features(pd.DataFrame(columns=list(RAW_COLUMNS)))
    assert len(out) == 0 and tuple(out.columns) == CATEGORICAL_FEATURES + NUMERIC_FEATURES


def test_pandas_string_dtype_input():
    raw = frame({}, {"Gpu": "AMD Radeon 530"}).astype({c: "string" for c in RAW_COLUMNS
                                                       if c != "Inches"})
    out = engineer_features(raw)
    assert list(out["gpu_brand"]) == ["Intel", "AMD"]


def test_one_hot_encoder_consumes_categoricals():
    sklearn_preprocessing = pytest.importorskip("sklearn.preprocessing")
    out = engineer_features(frame({}, {"Company": "Dell", "OpSys": "Linux"}))
    encoder = sklearn_preprocessing.OneHotEncoder(handle_unknown="ignore")
    encoded = encoder.fit_transform(out[list(CATEGORICAL_FEATURES)])
    assert encoded.shape == (2, 7)


# --------------------------------------------------------------------------- the public file

def test_public_file_parses_within_bounds():
    if not PUBLIC_CSV.exists():
        pytest.skip(f"public data set not present at {PUBLIC_CSV}")
    raw = pd.read_csv(PUBLIC_CSV)
    out = engineer_features(raw)
    assert len(out) == len(raw) == 1303
    assert out.index.equals(raw.index)
    for column in NUMERIC_FEATURES:
        low, high = DOMAIN_BOUNDS[column]
        values = out[column].to_numpy()
        assert np.isfinite(values).all(), column
        assert ((values >= low) & (values <= high)).all(), column
    assert set(out["cpu_brand"]) <= set(CPU_BRANDS)
    assert set(out["gpu_brand"]) <= set(GPU_BRANDS)
    assert set(out["os"]) == set(OS_CATEGORIES)
    assert out["ram_gb"].sum() == 10922  # 1303 rows, every Ram string counted
    first = out.loc[0]  # Apple, 13.3", IPS Panel Retina Display 2560x1600, i5 2.3GHz, ...
    assert (first["Company"], first["cpu_brand"], first["gpu_brand"], first["os"]) == (
        "Apple", "Intel Core i5", "Intel", "Mac")
    assert (first["ram_gb"], first["weight_kg"], first["ips"], first["touchscreen"],
            first["cpu_ghz"], first["gpu_number"], first["ssd_gb"]) == (
        8.0, 1.37, 1.0, 0.0, 2.3, 640.0, 128.0)
    assert first["ppi"] == pytest.approx(math.hypot(2560, 1600) / 13.3)


def test_domain_bounds_cover_every_numeric_feature():
    assert set(DOMAIN_BOUNDS) == set(NUMERIC_FEATURES)
    assert all(low < high for low, high in DOMAIN_BOUNDS.values())


# --------------------------------------------------------------------------- errors

def test_missing_columns_message():
    raw = frame({}).drop(columns=["Ram", "Weight"])
    with pytest.raises(InputError) as info:
        engineer_features(raw)
    assert str(info.value) == (
        "missing column(s) 'Ram', 'Weight'; expected columns: Company, TypeName, Inches, "
        "ScreenResolution, Cpu, Ram, Memory, Gpu, OpSys, Weight")


def test_ram_error_message_exact():
    with pytest.raises(FeatureParseError) as info:
        engineer_features(frame({}, {"Ram": "8 GiB"}, index=[10, 11]))
    assert str(info.value) == "row 11, column 'Ram': cannot parse '8 GiB' (expected e.g. '8GB')"
    assert (info.value.row, info.value.column, info.value.value) == (11, "Ram", "8 GiB")


def test_weight_error_message_exact():
    with pytest.raises(FeatureParseError) as info:
        engineer_features(frame({"Weight": "?"}, index=["laptop-a"]))
    assert str(info.value) == (
        "row laptop-a, column 'Weight': cannot parse '?' (expected e.g. '1.37kg')")


@pytest.mark.parametrize("column, value", [
    ("Ram", "eight"), ("Ram", "8TB"), ("Ram", "0GB"), ("Ram", 8),
    ("Weight", "1.37lb"), ("Weight", "kg"), ("Weight", "0kg"),
    ("ScreenResolution", "Full HD"), ("ScreenResolution", "1920x0"),
    ("ScreenResolution", "1920x1080 / 2560x1440"),
    ("Memory", "256GB SSD +"), ("Memory", "256GB"), ("Memory", "1TB Tape"), ("Memory", ""),
    ("Cpu", "Intel Core i5 7200U"), ("Cpu", "Intel Core i5 0GHz"),
    ("Inches", 0), ("Inches", -13.3), ("Inches", "big"), ("Inches", float("inf")),
    ("Gpu", "   "), ("Gpu", "Nvidia 12345678901234"),
    ("OpSys", ""), ("Company", 42), ("TypeName", ""),
])
def test_unparseable_value_names_row_and_column(column, value):
    raw = frame({}, {}, {column: value}, index=["r0", "r1", "r2"])
    with pytest.raises(FeatureParseError) as info:
        engineer_features(raw)
    assert info.value.row == "r2" and info.value.column == column
    assert str(info.value).startswith(f"row r2, column {column!r}: cannot parse ")


@pytest.mark.parametrize("column", RAW_COLUMNS)
@pytest.mark.parametrize("missing", [None, np.nan])
def test_missing_value_in_any_column(column, missing):
    raw = frame({}, {column: missing})
    with pytest.raises(FeatureParseError) as info:
        engineer_features(raw)
    assert (info.value.row, info.value.column) == (1, column)


def test_first_bad_row_is_reported():
    raw = frame({}, {"Ram": "x"}, {"Ram": np.nan}, {"Ram": "y"})
    with pytest.raises(FeatureParseError) as info:
        engineer_features(raw)
    assert info.value.row == 1
    raw = frame({}, {"Ram": np.nan}, {"Ram": "x"})
    with pytest.raises(FeatureParseError, match="row 1, column 'Ram': cannot parse nan"):
        engineer_features(raw)


def test_unknown_cpu_vendor_is_a_category_not_an_error():
    assert one(Cpu="Apple M1 3.2GHz")["cpu_brand"] == "Other"


# --------------------------------------------------------------------------- properties

@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4096), st.sampled_from(["GB", "gb", " GB", "Gb "])),
                min_size=1, max_size=20))
def test_ram_round_trips(values):
    raw = frame(*({"Ram": f"{n}{unit}"} for n, unit in values))
    assert list(engineer_features(raw)["ram_gb"]) == [float(n) for n, _ in values]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4999), st.sampled_from(["kg", " kg", "kgs"]),
                          st.booleans()), min_size=1, max_size=20))
def test_weight_round_trips(values):
    texts = []
    for hundredths, unit, strip in values:
        text = f"{hundredths / 100:.2f}"
        if strip:
            text = text.rstrip("0").rstrip(".")
        texts.append(text + unit)
    out = engineer_features(frame(*({"Weight": t} for t in texts)))
    assert list(out["weight_kg"]) == [float(t.split("k")[0]) for t in texts]


_PART = st.tuples(st.integers(1, 2048), st.sampled_from(["GB", "TB"]),
                  st.sampled_from(["SSD", "HDD", "Hybrid", "Flash Storage"]))
_KEY = {"SSD": "ssd_gb", "HDD": "hdd_gb", "Hybrid": "hybrid_gb", "Flash Storage": "flash_gb"}


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(_PART, min_size=1, max_size=3), min_size=1, max_size=10))
def test_memory_combos_sum(combos):
    texts = [" +  ".join(f"{size}{unit} {kind}" for size, unit, kind in parts)
             for parts in combos]
    out = engineer_features(frame(*({"Memory": t} for t in texts)))
    for i, parts in enumerate(combos):
        expected = dict.fromkeys(_KEY.values(), 0.0)
        for size, unit, kind in parts:
            expected[_KEY[kind]] += size * (1000 if unit == "TB" else 1)
        assert {k: out[k].iloc[i] for k in expected} == expected
