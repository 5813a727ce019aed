"""The customer's commands for the prediction service: ``request`` and ``fetch-model``."""
from __future__ import annotations

import sys

import click

from .common import quiet_option, reports_errors, say


def _tls_option(f):
    return click.option("--cacert", default=None, metavar="FILE", type=click.Path(dir_okay=False, exists=True),
                        help="Trust this CA certificate (PEM) for https:// URLs, e.g. a self-signed one.")(f)


def _timeout_option(f):
    return click.option("--timeout", default=60.0, show_default=True, type=click.FloatRange(1, 86400),
                        help="Seconds without progress before giving up.")(f)


@click.command("request", context_settings={"help_option_names": ["-h", "--help"]},
               epilog="""\b
Examples:
  python -m ppml request https://host:8443 Encrypted_Data/data.json -o Encrypted_Predicted_value/answer.json \\
      --token-file token.txt
  CustomerEncrypts.py x.csv -o - | python -m ppml request https://host:8443 - -o - |
      CustomerDecrypts.py - -o preds.csv""")
@click.argument("url")
@click.argument("encrypted", required=False, default="Encrypted_Data/data.json", metavar="[ENCRYPTED]")
@click.option("-o", "--output", default="Encrypted_Predicted_value/answer.json", show_default=True,
              help="Where to write the encrypted predictions; - for stdout. Nothing is written until "
                   "the whole answer has arrived and answers ENCRYPTED.")
@click.option("--token-file", default=None, metavar="FILE", type=click.Path(dir_okay=False),
              help="File holding the bearer token (mode 0600; default: $PPML_TOKEN).")
@click.option("--retries", default=5, show_default=True, type=click.IntRange(0, 100),
              help="Retries, with exponential backoff, when the service is saturated (503) or unreachable.")
@_timeout_option
@_tls_option
@quiet_option
@reports_errors
def request_command(url, encrypted, output, token_file, retries, timeout, cacert, quiet):
    """Have the service at URL score an encrypted-features document.

    URL is the service's base (https://host:8443; plain http:// only to this machine: a token
    sent over it to another host is readable on the way, and a one-line warning says so);
    ENCRYPTED a features document from
    CustomerEncrypts.py (default Encrypted_Data/data.json), - for stdin. The document streams
    up and the predictions stream down, in the document's layout (JSON or JSON Lines), ready
    for CustomerDecrypts.py. An answer for another key or model, or whose ids, batch sizes or
    record count differ from the document's, is refused (exit status 4).
    """
    from .. import client
    from ..files import display_name

    token = client.read_token(token_file)
    bar = _Transfer(quiet)
    try:
        result = client.score(url, encrypted, output, token, retries=retries, timeout=timeout,
                              verify=cacert if cacert else True, progress=bar.update)
    finally:
        bar.close()
    say(quiet, f"Scored {display_name(encrypted)} → {output if output != '-' else '<stdout>'}: "
               f"{result.bytes_sent:,} bytes sent, {result.bytes_received:,} received in {result.seconds:.2f} s")


class _Transfer:
    """``request: 3.1 MB sent, 0.1 MB received`` redrawn on a terminal, as the scripts' progress."""

    def __init__(self, quiet: bool):
        self.enabled = not quiet and sys.stderr.isatty()
        self.drawn = False

    def update(self, sent: int, received) -> None:
        if self.enabled:
            got = f", {received / 1e6:,.1f} MB received" if received else ""
            sys.stderr.write(f"\rrequest: {sent / 1e6:,.1f} MB sent{got}")
            sys.stderr.flush()
            self.drawn = True

    def close(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()


@click.command("fetch-model", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("url")
@click.option("--out-dir", required=True, metavar="DIR", type=click.Path(file_okay=False),
              help="Folder to set up for CustomerEncrypts.py --model DIR.")
@click.option("--force", is_flag=True, help="Replace files in DIR that differ from the service's.")
@_timeout_option
@_tls_option
@quiet_option
@reports_errors
def fetch_model_command(url, out_dir, force, timeout, cacert, quiet):
    """Set up a customer from the service at URL: download its public model files.

    Writes DIR/col_tnf.pkl and DIR/Encrypted_ModelParameters/Model.json after checking each
    file's SHA-256, the model fingerprint, and that the transformer is plain data (a pickle
    naming no class or function, every field checked) matching the model. Then:
    CustomerEncrypts.py records.csv --model DIR.
    """
    from .. import client

    for path in client.fetch_model(url, out_dir, force=force, timeout=timeout, verify=cacert if cacert else True):
        say(quiet, f"wrote {path}")
