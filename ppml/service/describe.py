"""What the service says about itself: its one list of statuses, the schema index and the
OpenAPI 3.1 description, both built from the JSON Schemas it publishes (``schema/``), so the
description cannot drift from the documents.
"""
from __future__ import annotations

import json

API = "/v1"
#: The identifier every published schema's ``$id`` starts with (``.invalid``: an identifier,
#: never fetched; the schemas themselves are served under ``/v1/schema/``). Cross-file
#: ``$ref`` values are relative, so they resolve against it.
SCHEMA_ID_BASE = "https://ppml.invalid/v1/schema/"
#: Every status the service answers with, and when: the protocol's one list.
STATUSES = {
    200: "Success. On /v1/score: the predictions document, streamed; if it ends with a line "
         '{"error": "…"} instead of its end, it was cut short and is incomplete.',
    400: "The document is malformed or breaks a rule of the protocol, or its public key fails a check.",
    401: "No bearer token, or an unknown or revoked one (on /metrics: not the metrics token).",
    404: "No such route, public file or schema.",
    405: "The route exists but not with this method.",
    408: "The request head, or the upload, stalled or took too long.",
    409: "The document was made for another model, codec or feature list than the service's.",
    413: "The body is larger than the service's limit.",
    415: "Content-Type is neither application/json nor application/x-ndjson.",
    429: "The client's daily quota, or its budget of new-key checks, is spent; see Retry-After.",
    503: "The service is saturated, stopping, or past its caps on connections or on the client's "
         "open requests; see Retry-After.",
}
#: Statuses each route can answer with (besides 503 past the connection caps and 408 for a
#: stalled request head, which any route can get).
ROUTE_STATUSES = {
    "score": (200, 400, 401, 405, 408, 409, 413, 415, 429, 503),
    "get": (200, 405),
    "file": (200, 404, 405),
    "metrics": (200, 401, 405),
    "healthz": (200, 405, 503),
}


def schema_id(name: str) -> str:
    return SCHEMA_ID_BASE + name


def schema_index(schemas: dict) -> dict:
    """``GET /v1/schema/``: every schema's URL (an absolute path) by file name."""
    return {"format": "ppml.schema-index", "version": 1,
            "schemas": {name: f"{API}/schema/{name}" for name in sorted(schemas)}}


def openapi(schemas: dict) -> dict:
    """The OpenAPI 3.1 description of the service; its components are the published schemas
    themselves (keyed by file name, ``$id`` and all)."""
    components = {name.removesuffix(".schema.json"): json.loads(data) for name, data in schemas.items()}

    def ref(name: str) -> dict:
        return {"$ref": f"#/components/schemas/{name}"}

    def answers(kind: str, ok: dict) -> dict:
        out = {}
        for status in ROUTE_STATUSES[kind]:
            entry: dict = {"description": STATUSES[status]}
            if status == 200:
                entry.update(ok)
            else:
                entry["content"] = {"application/json": {"schema": ref("error")}}
            if status in (429, 503):
                entry["headers"] = {"Retry-After": {"description": "Seconds to wait.",
                                                    "schema": {"type": "integer", "minimum": 1}}}
            out[str(status)] = entry
        return out

    def json_ok(name: str) -> dict:
        return {"content": {"application/json": {"schema": ref(name)}}}

    jsonl = {"description": "JSON Lines: a header line (the header schema with \"layout\": \"jsonl\"), one batch "
                            "per line, then the end line (jsonl-end)."}
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {"title": "ppml prediction service", "version": "1",
                 "description": "Scores Paillier-encrypted feature vectors with a linear model; see docs/protocol.md."},
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "A client token from `python -m ppml clients add`."}},
        },
        "paths": {
            f"{API}/score": {"post": {
                "summary": "Score an encrypted-features document; the answer streams in the body's layout.",
                "security": [{"bearer": []}],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": ref("encrypted-features")},
                    "application/x-ndjson": {"schema": {**jsonl, "type": "string"}}}},
                "responses": answers("score", {"content": {
                    "application/json": {"schema": ref("encrypted-predictions")},
                    "application/x-ndjson": {"schema": {**jsonl, "type": "string"}}}}),
            }},
            f"{API}/model": {"get": {"summary": "The model's public description.",
                                     "responses": answers("get", json_ok("model-description"))}},
            f"{API}/model/{{name}}": {"get": {
                "summary": "A public model file (Model.json, col_tnf.pkl).",
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": answers("file", {"content": {"application/octet-stream": {}, "application/json": {}}})}},
            f"{API}/schema/": {"get": {"summary": "The index of the published schemas.",
                                       "responses": answers("get", json_ok("schema-index"))}},
            f"{API}/schema/{{name}}": {"get": {
                "summary": "One JSON Schema.",
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": answers("file", {"content": {"application/schema+json": {}}})}},
            f"{API}/openapi.json": {"get": {"summary": "This description.",
                                            "responses": answers("get", {"content": {"application/json": {}}})}},
            "/healthz": {"get": {"summary": "200 once the scoring processes are up.",
                                 "responses": answers("healthz", {"content": {"application/json": {}}})}},
            "/metrics": {"get": {"summary": "Prometheus metrics (bearer token if the server has --metrics-token).",
                                 "responses": answers("metrics", {"content": {"text/plain": {}}})}},
        },
    }
