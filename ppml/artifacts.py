"""The model's files: ``col_tnf.pkl``, ``PreProcessingDataAndModel.pkl`` and
``Encrypted_ModelParameters/{Model,Coefficients,Intercept}.json``.

``col_tnf.pkl`` is the customer's: a :class:`~ppml.encoder.CustomerTransform` as plain data
(dicts, lists, text, numbers) pickled with no global at all. :func:`load_customer_transform`
reads it with an unpickler that refuses every global — no class, function or array
reconstructor of any module can be named, so nothing in the file runs code or builds objects
from raw memory — and then checks every field (:meth:`CustomerTransform.from_dict`).

``PreProcessingDataAndModel.pkl`` is the company's own fitted pipeline; nothing on the
customer's path loads it. It is read with a restricted unpickler that admits only the exact
scikit-learn, numpy and ppml names it is made of. Any other global — ``os.system``,
``builtins.eval``, ``pandas.read_pickle`` … — is refused before it can be called. An exported
model's (the company's own estimator, :mod:`ppml.export`) may use any scikit-learn estimator
class, so its allowlist is computed when it is written — the exact names the pickle holds —
and stored beside it (``PreProcessingDataAndModel.allow.json``). The stored list only ever
narrows: every name in it must pass :func:`admissible` (a fixed rule: scikit-learn estimator
classes, numpy ufuncs and scalar types, the fixed list), checked again when it is read, so an
edited list cannot admit ``os.system``, ``numpy.load`` or ``builtins.getattr``. The server
never loads a pickle at all.
"""
from __future__ import annotations

import hashlib
import importlib
import io
import pickle
import sys
from pathlib import Path

from . import files
from .documents import ModelParameters, ModelSpec
from .errors import ArtifactError, PpmlError

COL_TNF = "col_tnf.pkl"
PIPELINE = "PreProcessingDataAndModel.pkl"
PARAMS_DIR = "Encrypted_ModelParameters"
MODEL_JSON = "Model.json"
COEFFICIENTS_JSON = "Coefficients.json"
INTERCEPT_JSON = "Intercept.json"

#: (module, name) pairs a trained ``PreProcessingDataAndModel.pkl`` pickles to: the fitted
#: scikit-learn classes, ppml's feature steps and numpy's array reconstructors.
PIPELINE_GLOBALS = frozenset({
    ("builtins", "slice"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy", "float64"),
    ("numpy", "int64"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("ppml.features", "engineer_features"),
    ("ppml.tabular", "TabularFeatures"),
    ("sklearn.compose._column_transformer", "ColumnTransformer"),
    ("sklearn.linear_model._ridge", "Ridge"),
    ("sklearn.pipeline", "Pipeline"),
    ("sklearn.preprocessing._data", "StandardScaler"),
    ("sklearn.preprocessing._encoders", "OneHotEncoder"),
    ("sklearn.preprocessing._function_transformer", "FunctionTransformer"),
})


#: Builtin types a fitted estimator's parameters may name (``dtype=float``, slices of columns):
#: constructing one runs no code and touches nothing.
SAFE_BUILTINS = frozenset(("builtins", name) for name in (
    "slice", "float", "int", "str", "bool", "complex", "tuple", "list", "dict", "set", "frozenset",
    "bytes", "bytearray", "range"))
#: scikit-learn's univariate scores, which a fitted selector (``SelectKBest(f_regression)``)
#: names as its parameter: pure functions of arrays, no I/O.
SCORE_FUNCTIONS = frozenset(
    [("sklearn.feature_selection._univariate_selection", name)
     for name in ("f_regression", "f_classif", "chi2", "r_regression", "f_oneway")]
    + [("sklearn.feature_selection._mutual_info", name) for name in ("mutual_info_regression", "mutual_info_classif")])
ALLOWLIST_FORMAT = "ppml.pickle-allowlist"
_CYTHON_LOSS_MODULE = "sklearn._loss._loss"
_CYTHON_LOSS_ALIAS = "_loss"
ALLOWLIST_VERSION = 1


def admissible(module: str, name: str) -> str | None:
    """Why ``module.name`` may not appear in a model pickle, or None if it may: a name of the
    fixed list, a safe builtin type, a univariate score function, a numpy ufunc or scalar type,
    or a scikit-learn estimator
    class (whose constructor only stores its parameters). Only numpy, SciPy and scikit-learn
    modules are imported to check; functions such as ``numpy.load`` are refused."""
    if (module, name) in PIPELINE_GLOBALS | SAFE_BUILTINS | SCORE_FUNCTIONS:
        return None
    if module == _CYTHON_LOSS_ALIAS:
        # Cython names scikit-learn's loss classes after their module's short name and registers
        # it under that name too; nothing else may hide behind it.
        if sys.modules.get(module) is not importlib.import_module(_CYTHON_LOSS_MODULE):
            return f"{module!r} is not scikit-learn's loss module here"
    elif not any(module == top or module.startswith(top + ".") for top in ("numpy", "scipy", "sklearn")):
        return "only scikit-learn, numpy and SciPy names can be loaded"
    try:
        obj = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return "no such name in this installation"
    import numpy as np

    if isinstance(obj, np.ufunc) or isinstance(obj, type) and issubclass(obj, (np.generic, np.dtype)):
        return None
    if isinstance(obj, type) and (module.startswith("sklearn.") or module == _CYTHON_LOSS_ALIAS):
        from sklearn.base import BaseEstimator

        # Estimators' constructors only store their parameters; loss objects (SGD's fitted
        # loss_function_) take a number or nothing.
        if issubclass(obj, (BaseEstimator, importlib.import_module(_CYTHON_LOSS_MODULE).CyLossFunction)):
            return None
    return "not a scikit-learn estimator or loss class, numpy ufunc or scalar type"


class _Recorder(pickle.Unpickler):
    def __init__(self, file):
        super().__init__(file)
        self.names = set()

    def find_class(self, module: str, name: str):
        self.names.add((module, name))
        return super().find_class(module, name)


def pickle_globals(data: bytes) -> frozenset:
    """Every ``(module, name)`` a pickle loads, recorded by loading it: only for bytes this
    process has just written (:func:`dump_pickle`), never for a file read from disk."""
    recorder = _Recorder(io.BytesIO(data))
    recorder.load()
    return frozenset(recorder.names)


def allowlist_path(pickle_path) -> Path:
    """``PreProcessingDataAndModel.pkl`` → ``PreProcessingDataAndModel.allow.json``."""
    path = Path(pickle_path)
    return path.with_name(path.stem + ".allow.json")


def allowlist_document(data: bytes, names) -> dict:
    return {"format": ALLOWLIST_FORMAT, "version": ALLOWLIST_VERSION,
            "sha256": hashlib.sha256(data).hexdigest(), "globals": sorted([m, n] for m, n in names)}


def read_allowlist(path: Path, data: bytes) -> frozenset:
    """The stored allowlist of the pickle ``data``: for these very bytes, every name admissible."""
    d = files.read_json(path)
    if not isinstance(d, dict) or d.get("format") != ALLOWLIST_FORMAT or d.get("version") != ALLOWLIST_VERSION:
        raise ArtifactError(f"not a version-{ALLOWLIST_VERSION} {ALLOWLIST_FORMAT!r} document", str(path))
    if d.get("sha256") != hashlib.sha256(data).hexdigest():
        raise ArtifactError("is the allowlist of another pickle (written by another export)", str(path))
    entries = d.get("globals")
    if not isinstance(entries, list) or not all(
            isinstance(e, list) and len(e) == 2 and all(isinstance(s, str) for s in e) for e in entries):
        raise ArtifactError("field 'globals' must be a list of [module, name] pairs", str(path))
    for module, name in entries:
        reason = admissible(module, name)
        if reason:
            raise ArtifactError(f"refusing to admit {module}.{name}: {reason}", str(path))
    return frozenset((m, n) for m, n in entries)


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, allowed: frozenset):
        super().__init__(file)
        self.allowed = allowed

    def find_class(self, module: str, name: str):
        if (module, name) not in self.allowed:
            raise ArtifactError(f"refusing to load {module}.{name}: not a model class this toolkit "
                                "uses (the file may be tampered with)")
        return super().find_class(module, name)


def load_pickle(path, allowed: frozenset | None = None):
    """Unpickle the company's pipeline through an allowlist: by default the one stored beside it
    (:func:`allowlist_path`, an exported model's), else :data:`PIPELINE_GLOBALS`; every failure
    is an ArtifactError. Never for the customer's transformer (:func:`load_customer_transform`)."""
    path = Path(path)
    data = files.read_bytes(path) if path.exists() else None
    if data is None:
        raise ArtifactError("model file not found (run `python -m ppml train` or pass --model)", str(path))
    if allowed is None and allowlist_path(path).exists():
        allowed = read_allowlist(allowlist_path(path), data)
    try:
        return RestrictedUnpickler(io.BytesIO(data), PIPELINE_GLOBALS if allowed is None else allowed).load()
    except PpmlError as e:
        raise e.with_source(str(path))
    except Exception as e:  # truncated or corrupt pickles raise many kinds
        raise ArtifactError(f"not a readable model file ({type(e).__name__}: {e})", str(path)) from None


class _DataUnpickler(pickle.Unpickler):
    """Unpickles plain data only: every global is refused, so no class, function or array
    reconstructor can be named, called or built."""

    def find_class(self, module: str, name: str):
        why = ("the file may be tampered with" if not module.startswith("ppml.") else
               "an older ppml wrote it: write it again with `python -m ppml train` or `export`, or `fetch-model`")
        raise ArtifactError(f"refusing to load {module[:80]}.{name[:80]}: col_tnf.pkl holds plain data "
                            f"only (lists, text, numbers), never a class or function ({why})")


def read_customer_transform(data: bytes):
    """The customer's transformer from ``col_tnf.pkl``'s bytes: plain data, unpickled with no
    global admitted and checked field by field. Every failure is one ArtifactError line."""
    from .encoder import CustomerTransform

    try:
        obj = _DataUnpickler(io.BytesIO(data)).load()
    except PpmlError:
        raise
    except Exception as e:  # truncated or corrupt pickles raise many kinds
        raise ArtifactError(f"not a readable model file ({type(e).__name__}: {str(e)[:200]})") from None
    return CustomerTransform.from_dict(obj)


def load_customer_transform(path):
    """:func:`read_customer_transform` of the file ``path``, naming it in any error."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError("model file not found (run `python -m ppml train` or pass --model)", str(path))
    try:
        return read_customer_transform(files.read_bytes(path))
    except PpmlError as e:
        raise e.with_source(str(path))


def dump_customer_transform(transform) -> bytes:
    """``col_tnf.pkl``'s bytes: the transform's plain data, pickled without any global."""
    data = dump_pickle(transform.to_dict())
    if pickle_globals(data):
        raise AssertionError("a customer transform pickled a global")  # programming error
    return data


def dump_pickle(obj) -> bytes:
    return pickle.dumps(obj, protocol=5)


def load_spec(model_dir=".") -> ModelSpec:
    path = Path(model_dir) / PARAMS_DIR / MODEL_JSON
    try:
        return ModelSpec.from_dict(_read_json(path))
    except PpmlError as e:
        raise e.with_source(str(path))


def load_parameters(params_dir=PARAMS_DIR) -> ModelParameters:
    folder = Path(params_dir)
    spec_path = folder / MODEL_JSON
    try:
        spec = ModelSpec.from_dict(_read_json(spec_path))
    except PpmlError as e:
        raise e.with_source(str(spec_path))
    try:
        return ModelParameters.from_dicts(spec, _read_json(folder / COEFFICIENTS_JSON),
                                          _read_json(folder / INTERCEPT_JSON))
    except PpmlError as e:
        raise e.with_source(str(folder))


def _read_json(path: Path):
    if not path.exists():
        raise ArtifactError("model parameter file not found (run `python -m ppml train` or pass "
                            "--model/--params)", str(path))
    return files.read_json(path)


def save_model(trained, out_dir=".") -> list[Path]:
    """Write a trained model's artifacts atomically; returns their paths."""
    return write_model(trained.column_transformer, trained.pipeline, trained.parameters, out_dir)


def checked_pickle(obj, default: frozenset) -> tuple[bytes, frozenset | None]:
    """``obj`` pickled, and the allowlist it needs beyond ``default`` (None if ``default``
    suffices). Raises ArtifactError naming a global no allowlist may admit (a function of the
    company's own module, say): the customer could not load it."""
    data = dump_pickle(obj)
    names = pickle_globals(data)
    if names <= default:
        return data, None
    for module, name in sorted(names):
        reason = admissible(module, name)
        if reason:
            raise ArtifactError(f"{type(obj).__name__} pickles {module}.{name}, which a model file may not "
                                f"load ({reason})")
    return data, names


def write_model(col_tnf, pipeline, params: ModelParameters, out_dir=".") -> list[Path]:
    """Write the five artifacts atomically (``col_tnf`` a :class:`~ppml.encoder.CustomerTransform`),
    with an allowlist beside the pipeline if it needs names beyond the fixed list (an exported
    model's); returns their paths. A stale allowlist is removed (``col_tnf.pkl`` never has one)."""
    out = Path(out_dir)
    contents, stale = [(out / COL_TNF, dump_customer_transform(col_tnf))], [allowlist_path(out / COL_TNF)]
    data, names = checked_pickle(pipeline, PIPELINE_GLOBALS)
    contents.append((out / PIPELINE, data))
    if names is None:
        stale.append(allowlist_path(out / PIPELINE))
    else:
        contents.append((allowlist_path(out / PIPELINE), files.dump_json(allowlist_document(data, names)).encode()))
    contents += [
        (out / PARAMS_DIR / MODEL_JSON, files.dump_json(params.spec.to_dict()).encode()),
        (out / PARAMS_DIR / COEFFICIENTS_JSON, files.dump_json(params.coefficients_dict()).encode()),
        (out / PARAMS_DIR / INTERCEPT_JSON, files.dump_json(params.intercept_dict()).encode()),
    ]
    # Every destination is prepared (and every byte written to its temporary file) before any
    # is put in place, so a folder that cannot be written fails the run without leaving half a
    # model — mismatched pickles beside old parameters — behind.
    pending = []
    try:
        for path, data in contents:
            pending.append(files.AtomicFile(path))
            pending[-1].write(data)
        for f in pending:
            f.commit()
    except BaseException:
        for f in pending:
            f.abort()
        raise
    for path in stale:
        path.unlink(missing_ok=True)
    return [path for path, _ in contents]
