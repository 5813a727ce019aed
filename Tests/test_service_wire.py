"""The service's incremental body reader: any chunking reads the same document; limits on
size, nesting and idle time hold; the answer's text is what ppml.streams writes."""
from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given, settings, strategies as st

from ppml.errors import DocumentError
from ppml import streams
from ppml.service import wire

DOC = {"format": "x", "version": 1, "nested": {"a": [1, 2.5, None, True, 'q\\"]}']}, "text": "é\u2028",
       "batches": [{"ids": [1, "b"], "ciphertexts": ["ab", "CD"]}, {"ids": [2], "ciphertexts": ["0f"]}],
       "records": 3}


async def _chunks(data: bytes, sizes, delay: float = 0.0):
    i = 0
    for n in sizes:
        if i >= len(data):
            return
        if delay:
            await asyncio.sleep(delay)
        yield data[i:i + n]
        i += n
    if i < len(data):
        yield data[i:]


def read(data: bytes, sizes=(7,), max_bytes=10**9, idle=5.0, delay=0.0):
    async def go():
        r = wire.BodyReader(_chunks(data, list(sizes) * (len(data) + 1), delay), max_bytes, idle)
        header = await r.header()
        return r.jsonl, header, [b async for b in r.batches()], r.declared_records

    return asyncio.run(go())


def _jsonl(doc):
    head = {k: v for k, v in doc.items() if k not in ("batches", "records")}
    lines = [{**head, "layout": "jsonl"}, *doc["batches"], {"end": True, "records": doc["records"], "batches": 2}]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 64), spaced=st.booleans())
def test_any_chunking_reads_the_same_document(size, spaced):
    text = json.dumps(DOC, indent=1 if spaced else None, ensure_ascii=not spaced).encode()
    jsonl, header, batches, records = read(text, (size,))
    assert not jsonl and batches == DOC["batches"] and records == 3
    assert header == {k: v for k, v in DOC.items() if k != "batches"}
    jsonl, header, batches, records = read(_jsonl(DOC), (size,))
    assert jsonl and batches == DOC["batches"] and records == 3 and header["layout"] == "jsonl"


@pytest.mark.parametrize("body, message", [
    (b"", "is empty"),
    (b"[1]", "expected a JSON object"),
    (b'{"a":1', "truncated"),
    (b'{"a":1,"batches":[{"x":1}', "truncated"),
    (b'{"a":1,"batches":[],"records":0} junk', "data after the end"),
    (b'{"a":1,"batches":[],"zz":0}', "only 'records' may follow"),
    (b'{"a":1,"a":2,"batches":[]}', "appears twice"),
    (b'{"a":' + b"[" * 40 + b"]" * 40 + b"}", "nested too deeply"),
    (b'{"layout":"jsonl"}\n{"ids":[1]}\n', "before its end line"),
    (b'{"layout":"jsonl"}\n{"end":true,"records":0,"batches":0}\nmore', "data after the end line"),
    (b'{"a":NaN,"batches":[]}', "not a JSON number"),
])
def test_malformed_bodies(body, message):
    with pytest.raises(DocumentError, match=message):
        read(body, (3,))


def test_size_limit_counts_every_byte():
    with pytest.raises(wire.BodyTooLarge):
        read(json.dumps(DOC).encode(), (16,), max_bytes=100)


def test_one_value_over_the_limit_is_refused(monkeypatch):
    monkeypatch.setattr(wire, "MAX_VALUE_BYTES", 1000)
    big = {"format": "x", "pad": "a" * 5000, "batches": []}
    with pytest.raises(wire.BodyTooLarge, match="single JSON value"):
        read(json.dumps(big).encode(), (100,))


def test_a_stalled_upload_times_out():
    with pytest.raises(wire.BodyTimeout, match="no data"):
        read(json.dumps(DOC).encode(), (10,), idle=0.05, delay=0.2)


@pytest.mark.parametrize("jsonl", [False, True])
def test_answer_text_matches_the_stream_writer(tmp_path, jsonl):
    from ppml.streams import DocumentWriter

    header = {"format": "ppml.encrypted-predictions", "version": 1, "records": 3}
    batches = [{"ids": [1, 2], "ciphertext": "ab"}, {"ids": [3], "ciphertext": "cd"}]
    path = tmp_path / ("a.jsonl" if jsonl else "a.json")
    with DocumentWriter(path, header, jsonl=jsonl) as w:
        for b in batches:
            w.write(b, len(b["ids"]))
    text = streams.header_text(header, jsonl) + b"".join(streams.batch_text(b, i, jsonl) for i, b in enumerate(batches))
    assert text + streams.end_text(3, 2, jsonl) == path.read_bytes()
