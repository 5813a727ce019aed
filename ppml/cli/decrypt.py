"""``CustomerDecrypts.py``: ``Encrypted_Predicted_value/answer.json`` → predictions (or a
folder of answers → a folder of CSVs)."""
from __future__ import annotations

import os
from pathlib import Path

import click

from .common import (CommandWatch, keys_option, limits, limits_option, model_option, quiet_option,
                     reports_errors, run_stage, say, verbose_option, wait_option, weak_key_option, workers_option)

DEFAULT_INPUT = "Encrypted_Predicted_value/answer.json"
DEFAULT_REQUEST = "Encrypted_Data/data.json"
DEFAULT_FOLDER_OUTPUT = "Predictions"


@click.command(name="decrypt", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("answer", required=False, default=DEFAULT_INPUT, metavar="[ANSWER]")
@click.option("-o", "--output", default=None,
              help="Write CSV (columns id, prediction, and proba_<class> per class of a probabilistic "
                   "classifier, or prediction_<output> per output of a multi-output regression) to this "
                   "file, or - for CSV on stdout. "
                   "Without it, one readable line per record is printed. With a folder as ANSWER: "
                   f"the output folder of CSVs (default {DEFAULT_FOLDER_OUTPUT}/).")
@click.option("--request", default=None, metavar="FILE",
              help="The encrypted-features document the answer answers (what CustomerEncrypts.py "
                   "wrote and the company scored): an answer whose ids, batch sizes or record count "
                   "differ from it is refused (exit 4). Default: Encrypted_Data/data.json when ANSWER "
                   "is the default and that file exists. With a folder as ANSWER: the folder of "
                   "requests, each answer matched to the request of the same name, answer.json to data.json "
                   "(default Encrypted_Data/ when ANSWER is Encrypted_Predicted_value/ and that folder "
                   "exists); an answer without its request is refused.")
@keys_option
@model_option
@workers_option
@wait_option
@limits_option
@weak_key_option
@verbose_option
@quiet_option
@reports_errors
def decrypt_command(answer, output, request, keys_dir, model_dir, workers, wait, max_batch_mb, allow_weak_key,
                    verbose, quiet):
    """Decrypt the company's encrypted predictions with the customer's private key.

    ANSWER is an encrypted-predictions document (default
    Encrypted_Predicted_value/answer.json), - for stdin, or a folder: then every *.json /
    *.jsonl in it whose CSV is missing or was made from other bytes is decrypted into the
    output folder (cron mode). Predictions are in the target's own units (for the laptop model:
    the price, exp of the model's log price), or a classifier's class label and probabilities.
    How to decode them (codec, outputs, link) comes from the model folder's Model.json
    (--model), never from the answer: an answer from another model or with another codec is
    refused, and so is one that does not answer the request (--request) or holds a value the
    model cannot reach over its declared bounds. Without a request (a pipeline reading - ,
    or another ANSWER without --request) the ids are not checked.
    """
    from .. import artifacts, stages
    from ..keystore import KeyStore

    spec = artifacts.load_spec(model_dir)
    keys = stages.CustomerKeys(KeyStore(keys_dir), allow_weak=allow_weak_key)
    watch = CommandWatch("Decrypting", verbose, quiet)
    protected = stages.model_files(model_dir) + stages.model_files(".")

    find_request = request_finder(answer, request)

    def process(source, output):
        done = stages.decrypt(source, output, spec=spec, keys=keys, request=find_request(source), workers=workers,
                              limits=limits(max_batch_mb), protected=protected, watch=watch)
        watch.end()
        if output not in (None, "-"):
            say(quiet, f"Wrote {done.records} prediction(s) to {output}")

    run_stage(answer, output, process, default_file=None, default_folder=DEFAULT_FOLDER_OUTPUT,
              suffixes=(".json", ".jsonl"), out_name=lambda p: Path(p).stem + ".csv", quiet=quiet, what="decrypt",
              wait=wait)
    watch.report()


def request_finder(answer, request):
    """``answer file → its request file`` (or None: no check). One answer: ``request``, else the
    default request beside the default answer. A folder of answers: the file of the same name
    in the ``request`` folder (or the default one beside the default answer folder), as folder
    mode names them: ``CustomerEncrypts.py`` writes ``Encrypted_Data/<name>.json`` and
    ``ServerModelRun.py`` answers it as ``Encrypted_Predicted_value/<name>.json``; the default
    answer ``answer.json`` answers the default ``data.json``. In a folder of requests, an answer
    without its request is refused (its name is the company's choice)."""
    from ..errors import AnswerMismatchError

    if str(answer) == "-" and str(request) == "-":
        raise click.BadParameter("the answer already comes from stdin; name the request's file", param_hint="--request")
    folder_mode = str(answer) != "-" and os.path.isdir(answer)
    if not folder_mode:
        if request is None and os.path.isfile(DEFAULT_REQUEST) and _same(answer, DEFAULT_INPUT):
            request = DEFAULT_REQUEST
        return lambda source: request
    if request is None:
        default_answers, default_requests = Path(DEFAULT_INPUT).parent, Path(DEFAULT_REQUEST).parent
        if default_requests.is_dir() and _same(answer, default_answers):
            request = str(default_requests)
        else:
            return lambda source: None
    if not os.path.isdir(request):
        raise click.BadParameter("with a folder of answers, give the folder of their requests", param_hint="--request")

    def find(source):
        path = Path(request) / Path(source).name
        if _same(source, DEFAULT_INPUT) and _same(request, Path(DEFAULT_REQUEST).parent):
            path = Path(DEFAULT_REQUEST)  # the default pair, as the three scripts name it without arguments
        if not path.is_file():
            raise AnswerMismatchError(f"answers no request: {path} does not exist", source)
        return str(path)

    return find


def _same(path, default) -> bool:
    """Whether ``path`` names the default file or folder (however it is spelt)."""
    return str(path) != "-" and os.path.exists(path) and os.path.exists(default) and os.path.samefile(path, default)
