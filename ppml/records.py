"""Raw records as every role reads them: a CSV (a path, ``-`` for stdin, or bytes) → chunks of
``(DataFrame of strings, record ids)``, with one-line errors naming the file; and the sample
laptop the commands use when given no records. The customer's encryption, the training and
the export all read records through here.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator

from . import files
from .documents import id_problem
from .errors import InputError

#: The original project's example: the laptop a new user gets a price for without any input.
SAMPLE_LAPTOP = {
    "Company": "Dell", "TypeName": "Notebook", "Inches": "15.6",
    "ScreenResolution": "Full HD 1920x1080", "Cpu": "Intel Core i7 2.8GHz", "Ram": "8GB",
    "Memory": "256GB SSD", "Gpu": "Nvidia GeForce GTX 1050", "OpSys": "Windows 10", "Weight": "2.0kg",
}
#: Batches per chunk of CSV records: large enough for fast pandas, small enough for flat memory.
CHUNK_BATCHES = 64


def is_laptop_transform(col_tnf) -> bool:
    """Whether the sample laptop fits this model (its features step is the laptop parser)."""
    from .features import LAPTOP_FEATURES

    return col_tnf.features == LAPTOP_FEATURES


def sample_records():
    import pandas as pd

    yield pd.DataFrame([SAMPLE_LAPTOP]), [0]


def read_records(data: bytes, source: str):
    """All records of CSV bytes at once (training): (DataFrame of strings, ids)."""
    import io

    chunks = list(iter_record_chunks(io.BytesIO(data), source, chunk_records=None))
    if len(chunks) != 1:
        raise AssertionError("one chunk expected")  # programming error
    return chunks[0]


def iter_record_chunks(path_or_buffer, source: str, chunk_records: int | None) -> Iterator:
    """CSV → (DataFrame of strings, record ids) chunks of ``chunk_records`` rows (all rows if
    None). Ids come from an ``id`` column if there is one, else they are 0-based row numbers."""
    import pandas as pd

    stream = path_or_buffer
    if isinstance(stream, str):
        if stream == files.STDIO:
            stream = sys.stdin.buffer
        else:
            try:
                stream = open(stream, "rb")
            except FileNotFoundError:
                raise InputError("file not found", source) from None
            except IsADirectoryError:
                raise InputError("is a folder, expected a CSV file", source) from None
            except OSError as e:
                raise InputError(f"cannot read: {e.strerror}", source) from None
    try:
        # pandas raises at open when reading whole, at each chunk otherwise.
        with CsvErrors(source):
            reader = pd.read_csv(stream, dtype=str, keep_default_na=False, encoding="utf-8",
                                 chunksize=chunk_records)
        frames = reader if chunk_records else iter([reader])
        seen_ids: set = set()
        offset = 0
        while True:
            with CsvErrors(source):
                frame = next(frames, None)
            if frame is None or frame.empty:
                break
            if "id" in frame.columns:
                ids = [_id_value(v) for v in frame["id"]]
                for row, rid in enumerate(ids, offset):
                    problem = id_problem(rid)
                    if problem:
                        raise InputError(f"row {row}, column 'id': {problem}", source)
                before = len(seen_ids)
                seen_ids.update(ids)  # linear: each id is hashed once, whatever the chunking
                if len(seen_ids) != before + len(ids):
                    raise InputError("column 'id' has duplicate values", source)
            else:
                ids = list(range(offset, offset + len(frame)))
            frame.index = range(offset, offset + len(frame))
            offset += len(frame)
            yield frame, ids
        if offset == 0:
            raise InputError("has a header but no records", source)
    finally:
        if stream is not path_or_buffer:
            stream.close()


class CsvErrors:
    """pandas' reading errors → one-line InputErrors naming the file."""

    def __init__(self, source: str):
        self.source = source

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        import pandas as pd

        if exc_type is None:
            return False
        if issubclass(exc_type, pd.errors.EmptyDataError):
            raise InputError("is empty, expected a CSV with a header row", self.source) from None
        if issubclass(exc_type, UnicodeDecodeError):
            raise InputError("is not UTF-8 text", self.source) from None
        if issubclass(exc_type, (pd.errors.ParserError, ValueError)):
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InputError(f"is not a readable CSV: {detail}", self.source) from None
        return False


def _id_value(v: str):
    """``"17"`` → 17 (so CSV ids round-trip as numbers); anything else — leading zeros,
    non-ASCII digits, more digits than an int64 — stays text."""
    if v.isascii() and v.isdigit() and len(v) <= 18 and (v == "0" or not v.startswith("0")):
        return int(v)
    return v
