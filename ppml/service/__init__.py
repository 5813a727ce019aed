"""The prediction service (``python -m ppml serve``): the company's model over HTTP.

* :mod:`.app` — the ASGI app (Starlette): routes, admission, streaming answers;
* :mod:`.wire` — request bodies read incrementally under limits, answers written batch by batch;
* :mod:`.pool` — the persistent scoring processes (forkserver) or a Dask cluster;
* :mod:`.clients` — the SQLite clients database: tokens (hashed), daily quotas, usage;
* :mod:`.observe` — Prometheus metrics and the JSON Lines audit log;
* ``schema/`` — the JSON Schemas of the protocol, published under ``/v1/schema/``.

Needs the ``serve`` extra; imports neither pandas, scikit-learn nor numpy.
"""
