"""``python -m ppml portal``: the customer's web form over the company's prediction service."""
from __future__ import annotations

import contextlib
import tempfile

import click

from .common import keys_option, quiet_option, reports_errors, say, weak_key_option


@click.command("portal", context_settings={"help_option_names": ["-h", "--help"]},
               epilog="""\b
Example:
  python -m ppml portal --server https://host:8443 --token-file token.txt
  # then open http://127.0.0.1:8501/ in a browser""")
@click.option("--server", required=True, metavar="URL",
              help="The company's service (its base URL, as for `request`), e.g. https://host:8443.")
@click.option("--cacert", default=None, metavar="FILE", type=click.Path(dir_okay=False, exists=True),
              help="Trust this CA certificate (PEM) for an https:// --server, e.g. a self-signed one.")
@click.option("--token-file", default=None, metavar="FILE", type=click.Path(dir_okay=False),
              help="File holding the bearer token (mode 0600; default: $PPML_TOKEN).")
@keys_option
@click.option("--key-size", type=int, default=None,
              help="Modulus size in bits for a new key pair (default 3072); keys are created only if "
                   "the key folder holds none.")
@click.option("--model", "model_dir", default=None, type=click.Path(file_okay=False, exists=True),
              help="A local model folder (col_tnf.pkl, Encrypted_ModelParameters/Model.json). Default: "
                   "download the service's public model files at start, fingerprints checked.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Keep it on loopback: the portal holds the private key.")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port, printed at start).")
@weak_key_option
@quiet_option
@reports_errors
def portal_command(server, cacert, token_file, keys_dir, key_size, model_dir, host, port, allow_weak_key, quiet):
    """A web page for predictions: a form for one record, an upload for a CSV of them.

    The portal runs on the customer's machine. It encrypts with the customer's key (created in
    the key folder if there is none), sends ciphertexts only to the service at --server, and
    decrypts the answer on this machine; the page shows the prediction, what the company saw,
    and how long each step took. It answers only to loopback host names and protects its forms
    with a CSRF token. Needs the 'portal' extra.
    """
    from .. import client, stages
    from ..errors import KeyFileError
    from ..keystore import KeyStore

    try:
        import uvicorn

        from ..portal.app import LOOPBACK_NAMES, create_app
        from ..portal.predict import Customer, prediction_label
    except ImportError:
        raise click.ClickException("the portal needs its extra: pip install 'ppml[portal]'") from None
    token = client.read_token(token_file)
    client.plain_http_warning(server)  # before anything, the token included, goes to the server
    store = KeyStore(keys_dir)
    existing = store.load_public(allow_weak_key) if store.exists() else None
    if existing is not None and key_size is not None and key_size != existing.bits:
        raise KeyFileError(f"holds a {existing.bits}-bit key pair, not {key_size} bits; "
                           f"replace it with `python -m ppml keygen --key-size {key_size} --force`", str(keys_dir))
    keys = stages.CustomerKeys(store, existing.bits if existing else key_size, allow_weak_key,
                               on_create=lambda public, store: say(
                                   quiet, f"Created a {public.bits}-bit key pair in {store.folder}/ "
                                          "(private key mode 0600)."))
    if host not in LOOPBACK_NAMES:
        say(False, f"Warning: listening on {host}: anyone who can reach it can use your key and your quota.")
    with contextlib.ExitStack() as stack:
        http = stack.enter_context(client.http_client(verify=cacert if cacert else True, url=server))
        if model_dir is None:
            model_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="ppml-portal-model-"))
            client.fetch_model(server, model_dir, http=http)
        customer = Customer.load(server, token, model_dir, keys, http)
        app = create_app(customer, hosts=[host])
        config = uvicorn.Config(app, host=host, port=port, log_level="warning" if quiet else "info",
                                access_log=False, server_header=False, timeout_graceful_shutdown=15,
                                timeout_keep_alive=5)
        say(quiet, f"Portal for model {customer.spec.fingerprint[:23]}… ({prediction_label(customer.spec)}) "
                   f"scored by {server}; key {customer.public_key.fingerprint[:23]}… in {keys_dir}/")
        uvicorn.Server(config).run()
