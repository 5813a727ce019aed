"""``python -m ppml serve`` (the company's prediction service) and ``python -m ppml clients``
(who may call it, and how much they used)."""
from __future__ import annotations

from pathlib import Path

import click

from .common import (max_key_bits_option, quiet_option, reports_errors, say, scheduler_option, weak_key_option,
                     workers_option)


def db_option(f):
    return click.option("--db", "db_path", default=None, metavar="FILE", type=click.Path(dir_okay=False),
                        help="The clients database (SQLite, created on first use; default $PPML_DB, "
                             "else ppml-service.db in the current folder).")(f)


@click.command("serve", context_settings={"help_option_names": ["-h", "--help"]},
               epilog="""\b
Examples:
  python -m ppml clients add acme --quota 100000      # prints acme's token
  # on this machine only, behind a TLS reverse proxy (docs/deployment.md):
  python -m ppml serve --port 8000 --audit-log audit.jsonl
  # or HTTPS directly:
  python -m ppml serve --host 0.0.0.0 --port 8443 --tls-cert cert.pem --tls-key key.pem
  curl -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \\
       --data-binary @Encrypted_Data/data.json https://host:8443/v1/score -o answer.json""")
@click.option("--model", "model_dir", default=None, type=click.Path(file_okay=False),
              help="A trained model folder: scores with its Encrypted_ModelParameters/ and publishes "
                   "its col_tnf.pkl (default: the current folder). Not together with --params.")
@click.option("--params", "params_dir", default=None, type=click.Path(file_okay=False),
              help="Only a parameters folder (Model.json, Coefficients.json, Intercept.json); then "
                   "no col_tnf.pkl is published.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port, printed at start).")
@workers_option
@db_option
@click.option("--audit-log", default=None, metavar="FILE", type=click.Path(dir_okay=False),
              help="Append one JSON line per request (client, sizes, status, duration) to FILE.")
@click.option("--max-body-mb", default=256, show_default=True, type=click.IntRange(1, 1 << 20),
              help="Largest request body accepted, in MiB (413 beyond).")
@click.option("--queue", default=16, show_default=True, type=click.IntRange(0, 100_000),
              help="Requests that may wait for a turn while 2 × workers are scored; more get 503.")
@scheduler_option
@click.option("--tls-cert", default=None, metavar="FILE", type=click.Path(dir_okay=False, exists=True),
              help="Serve HTTPS with this certificate (PEM; with --tls-key).")
@click.option("--tls-key", default=None, metavar="FILE", type=click.Path(dir_okay=False, exists=True),
              help="The certificate's private key (PEM).")
@max_key_bits_option
@click.option("--max-connections", default=1000, show_default=True, type=click.IntRange(1, 1 << 20),
              help="Open connections at most (lowered to fit the file-descriptor limit); more get 503.")
@click.option("--per-client", default=4, show_default=True, type=click.IntRange(1, 10_000),
              help="Requests one client (token) may have open at once; more get 503.")
@click.option("--head-timeout", default=10.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds a client has to send a request's line and headers (408 after).")
@click.option("--keep-alive", default=5.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds an idle kept-alive connection stays open.")
@click.option("--idle-timeout", default=30.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds without a byte of an upload, or without progress sending an answer (408 / cut).")
@click.option("--metrics-token", default=None, envvar="PPML_METRICS_TOKEN", metavar="TOKEN",
              help="Require this bearer token on /metrics (default $PPML_METRICS_TOKEN; unset: /metrics is open, "
                   "so keep it off the public network).")
@weak_key_option
@quiet_option
@reports_errors
def serve_command(model_dir, params_dir, host, port, workers, db_path, audit_log, max_body_mb, queue, scheduler,
                  tls_cert, tls_key, max_key_bits, max_connections, per_client, head_timeout, keep_alive,
                  idle_timeout, metrics_token, allow_weak_key, quiet):
    """Offer the company's model as a prediction service over HTTP(S).

    Customers POST encrypted-features documents to /v1/score with a bearer token (see
    `python -m ppml clients`) and get the encrypted predictions back, streamed batch by batch
    in the layout they sent. GET /v1/model describes the model and serves its public files;
    /healthz answers 200 once the scoring processes are up; /metrics is for Prometheus. Like
    ServerModelRun.py, the service never sees a feature or a private key, and imports neither
    pandas, scikit-learn nor numpy. SIGTERM (or Ctrl-C) stops it after the requests in flight.
    """
    from .. import artifacts
    from ..service.app import Settings, create_app
    from ..service.clients import ClientDB, default_db_path
    from ..service.connections import connection_cap, guarded_protocol

    try:
        import uvicorn
    except ImportError:
        raise click.ClickException("the service needs its extra: pip install 'ppml[serve]'") from None
    if params_dir is not None and model_dir is not None:
        raise click.UsageError("give --model or --params, not both")
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if params_dir is None:
        model_dir = model_dir or "."
        params_dir = str(Path(model_dir) / artifacts.PARAMS_DIR)
    params = artifacts.load_parameters(params_dir)
    db = ClientDB(db_path or default_db_path())
    settings = Settings(workers=workers, scheduler=scheduler, max_body_bytes=max_body_mb << 20,
                        allow_weak_key=allow_weak_key, queue=queue, max_key_bits=max_key_bits, per_client=per_client,
                        idle_timeout=idle_timeout, metrics_token=metrics_token)
    app = create_app(params, db=db, settings=settings, model_dir=model_dir, audit_log=audit_log)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning" if quiet else "info",
                            access_log=False, server_header=False, lifespan="on",
                            ssl_certfile=tls_cert, ssl_keyfile=tls_key, timeout_graceful_shutdown=15,
                            timeout_keep_alive=keep_alive,
                            http=guarded_protocol(connection_cap(max_connections), head_timeout))
    say(quiet, f"Serving model {params.spec.fingerprint[:23]}… with "
               f"{'the Dask cluster ' + scheduler if scheduler else f'{workers} scoring process(es)'}; "
               f"clients in {db.path}" + (f", audit log {audit_log}" if audit_log else ""))
    uvicorn.Server(config).run()


@click.group("clients", context_settings={"help_option_names": ["-h", "--help"]})
def clients_group():
    """Who may call the service: add, list, revoke clients and see their usage."""


@clients_group.command("add")
@click.argument("name")
@click.option("--quota", type=click.IntRange(0), default=None, metavar="RECORDS",
              help="Records the client may have scored per UTC day (default: unlimited).")
@db_option
@reports_errors
def clients_add(name, quota, db_path):
    """Add client NAME and print its bearer token, once, alone on the last line.

    Only a hash of the token is kept: a lost token cannot be shown again (revoke the client
    and add it under a new name)."""
    from ..service.clients import ClientDB, default_db_path

    db = ClientDB(db_path or default_db_path())
    token = db.add(name, quota)
    click.echo(f"Added client {name} ({'unlimited' if quota is None else f'{quota:,} records a day'}) "
               f"to {db.path}. Its token, shown only now:", err=True)
    click.echo(token)


@clients_group.command("list")
@db_option
@reports_errors
def clients_list(db_path):
    """One line per client: name, daily quota, state."""
    from ..service.clients import ClientDB, default_db_path

    for u in ClientDB(db_path or default_db_path()).usage():
        quota = "unlimited" if u.quota is None else f"{u.quota} records/day"
        click.echo(f"{u.name}\t{quota}\t{'revoked' if u.revoked else 'active'}")


@clients_group.command("revoke")
@click.argument("name")
@db_option
@reports_errors
def clients_revoke(name, db_path):
    """Revoke NAME's token at once (its usage is kept)."""
    from ..service.clients import ClientDB, default_db_path

    ClientDB(db_path or default_db_path()).revoke(name)
    click.echo(f"Revoked client {name}.", err=True)


@clients_group.command("usage")
@db_option
@reports_errors
def clients_usage(db_path):
    """One line per client: name, records scored today (UTC), records scored in all, requests."""
    from ..service.clients import ClientDB, default_db_path

    for u in ClientDB(db_path or default_db_path()).usage():
        quota = "" if u.quota is None else f"\tquota {u.quota}"
        click.echo(f"{u.name}\ttoday {u.today}\ttotal {u.total}\trequests {u.requests}{quota}")
