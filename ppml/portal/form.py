"""The portal's form, generated from the customer's transformer: one field per raw input column.

A numeric column (standardised, scaled or passed through) is a number input; a one-hot column
is a ``<select>`` of the categories the model knows. The laptop model's columns are free text
in the public data set's format (``8GB``, ``Intel Core i5 7200U 2.5GHz``), which its parser
reads, so they are text inputs with a ``<datalist>`` of examples; its ``Inches`` is a number.
Defaults: the sample laptop for the laptop model; otherwise each numeric column's training
mean when the transformer holds it (a standard scaler's), and the first known category.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..customer import SAMPLE_LAPTOP, is_laptop_transform

NUMBER, TEXT, SELECT = "number", "text", "select"

#: Public-format examples offered for the laptop's free-text columns (any value the parser
#: reads is accepted).
LAPTOP_EXAMPLES = {
    "ScreenResolution": ["1366x768", "Full HD 1920x1080", "IPS Panel Full HD 1920x1080",
                         "IPS Panel Full HD / Touchscreen 1920x1080", "IPS Panel Retina Display 2560x1600",
                         "4K Ultra HD 3840x2160"],
    "Cpu": ["Intel Core i3 6006U 2GHz", "Intel Core i5 7200U 2.5GHz", "Intel Core i5 8250U 1.6GHz",
            "Intel Core i7 7700HQ 2.8GHz", "Intel Core i7 8550U 1.8GHz", "Intel Celeron Dual Core N3350 1.1GHz",
            "AMD A9-Series 9420 3GHz", "AMD Ryzen 1700 3GHz"],
    "Ram": ["4GB", "8GB", "12GB", "16GB", "32GB"],
    "Memory": ["128GB SSD", "256GB SSD", "512GB SSD", "1TB HDD", "500GB HDD", "128GB SSD +  1TB HDD",
               "256GB SSD +  1TB HDD", "32GB Flash Storage", "1TB Hybrid"],
    "Gpu": ["Intel HD Graphics 620", "Intel UHD Graphics 620", "Nvidia GeForce GTX 1050",
            "Nvidia GeForce GTX 1060", "Nvidia GeForce MX150", "AMD Radeon 530"],
    "OpSys": ["Windows 10", "Windows 7", "Linux", "No OS", "Chrome OS", "macOS", "Mac OS X"],
    "Weight": ["1.2kg", "1.5kg", "2.0kg", "2.2kg", "2.5kg", "3.0kg"],
}
LAPTOP_NUMBERS = ("Inches",)


@dataclass
class Field:
    """One form control: ``name`` (the raw column), ``kind`` (:data:`NUMBER`, :data:`TEXT` or
    :data:`SELECT`), ``options`` (the select's categories, or the text input's suggestions) and
    ``default``."""

    name: str
    kind: str
    default: str = ""
    options: list = field(default_factory=list)

    @property
    def control_id(self) -> str:
        return "field-" + "".join(c if c.isalnum() else "-" for c in self.name)


def form_fields(col_tnf) -> list[Field]:
    """The form of the model whose customer transformer is ``col_tnf``, in input-column order."""
    if is_laptop_transform(col_tnf):
        return [_laptop_field(name, col_tnf) for name in col_tnf.input_columns]
    blocks = {column: block for block in col_tnf.columns.blocks for column in block.columns}
    return [_generic_field(name, blocks.get(name)) for name in col_tnf.input_columns]


def _laptop_field(name: str, col_tnf) -> Field:
    default = SAMPLE_LAPTOP.get(name, "")
    if name in LAPTOP_NUMBERS:
        return Field(name, NUMBER, default)
    known = _categories(next((b for b in col_tnf.columns.blocks if name in b.columns), None))
    return Field(name, TEXT, default, known or LAPTOP_EXAMPLES.get(name, []))


def _generic_field(name: str, block) -> Field:
    categories = _categories(block)
    if categories:
        return Field(name, SELECT, categories[0], categories)
    kind = type(block).__name__
    if kind == "ScaleBlock":
        i = block.columns.index(name)
        return Field(name, NUMBER, _training_value(block, i))
    return Field(name, TEXT)


def _categories(block) -> list[str]:
    """The categories a one-hot block knows."""
    index = getattr(block, "index", None)
    return sorted({str(k) for k in index}) if isinstance(index, dict) else []


def _training_value(block, i: int) -> str:
    """A typical value of numeric column ``i``: the training mean a standard scaler keeps, the
    middle of a min-max scaler's training range, else 0."""
    if block.mean is not None:
        value = float(block.mean[i])
    elif block.factor is not None and block.offset is not None and block.factor[i]:
        value = (0.5 - float(block.offset[i])) / float(block.factor[i])
    else:
        value = 0.0
    return plain_number(value)


def plain_number(value: float) -> str:
    """Four significant digits, without an exponent or trailing zeros (41.27, 0.505, 1200)."""
    if not math.isfinite(value) or value == 0:
        return "0"
    digits = max(0, 3 - math.floor(math.log10(abs(value))))
    text = f"{round(value, digits):.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
