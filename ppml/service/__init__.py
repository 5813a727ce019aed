"""The prediction service (``python -m ppml serve``): the company's model over HTTP.

* :mod:`.app` — the ASGI app (Starlette): routes, admission, streaming answers;
* :mod:`.body` — the request body fed to the one document reader (:mod:`ppml.streams`) in a thread;
* :mod:`.keys` — the customers' keys checked in a process of their own, once, on a per-client budget;
* :mod:`.describe` — the status list, the schema index and the OpenAPI description;
* :mod:`.connections` — the HTTP connections: head deadline, caps, 503 past them;
* :mod:`.pool` — the persistent scoring processes (forkserver) or a Dask cluster;
* :mod:`.clients` — the SQLite clients database: tokens (hashed), daily quotas, usage;
* :mod:`.observe` — Prometheus metrics and the JSON Lines audit log;
* ``schema/`` — the JSON Schemas of the protocol, published under ``/v1/schema/``.

Needs the ``serve`` extra; imports neither pandas, scikit-learn nor numpy.
"""
