"""The model's files: ``col_tnf.pkl``, ``PreProcessingDataAndModel.pkl`` and
``Encrypted_ModelParameters/{Model,Coefficients,Intercept}.json``.

Pickles are loaded with a restricted unpickler that admits only the exact scikit-learn, numpy
and ppml names these artifacts are made of. Any other global — ``os.system``,
``builtins.eval``, ``pandas.read_pickle`` … — is refused before it can be called, so a
tampered ``.pkl`` cannot run code. The server never loads a pickle at all.
"""
from __future__ import annotations

import io
import pickle
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

#: (module, name) pairs ``col_tnf.pkl`` pickles to: ppml's compiled transformer, its feature
#: step (the laptop parser or a generic model's :class:`~ppml.tabular.TabularFeatures`) and
#: numpy's array reconstructors. Classes and reconstructors only: none of them does I/O or evaluates
#: anything when called.
CUSTOMER_GLOBALS = frozenset({
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
    ("ppml.encoder", "CustomerTransform"),
    ("ppml.encoder", "CompiledColumns"),
    ("ppml.encoder", "OneHotBlock"),
    ("ppml.encoder", "ScaleBlock"),
    ("ppml.tabular", "TabularFeatures"),
})
#: ``PreProcessingDataAndModel.pkl`` adds the fitted scikit-learn estimator classes.
PIPELINE_GLOBALS = CUSTOMER_GLOBALS | frozenset({
    ("sklearn.compose._column_transformer", "ColumnTransformer"),
    ("sklearn.linear_model._ridge", "Ridge"),
    ("sklearn.pipeline", "Pipeline"),
    ("sklearn.preprocessing._data", "StandardScaler"),
    ("sklearn.preprocessing._encoders", "OneHotEncoder"),
    ("sklearn.preprocessing._function_transformer", "FunctionTransformer"),
})


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
    """Unpickle a model artifact through an allowlist (by default the one for its file name:
    the customer's transformer admits no scikit-learn names at all); every failure is an
    ArtifactError."""
    path = Path(path)
    data = files.read_bytes(path) if path.exists() else None
    if data is None:
        raise ArtifactError("model file not found (run `python -m ppml train` or pass --model)", str(path))
    try:
        if allowed is None:
            allowed = PIPELINE_GLOBALS if path.name == PIPELINE else CUSTOMER_GLOBALS
        return RestrictedUnpickler(io.BytesIO(data), allowed).load()
    except PpmlError as e:
        raise e.with_source(str(path))
    except Exception as e:  # truncated or corrupt pickles raise many kinds
        raise ArtifactError(f"not a readable model file ({type(e).__name__}: {e})", str(path)) from None


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
    """Write the five artifacts atomically; returns their paths."""
    out = Path(out_dir)
    params = trained.parameters
    contents = (
        (out / COL_TNF, dump_pickle(trained.column_transformer)),
        (out / PIPELINE, dump_pickle(trained.pipeline)),
        (out / PARAMS_DIR / MODEL_JSON, files.dump_json(params.spec.to_dict()).encode()),
        (out / PARAMS_DIR / COEFFICIENTS_JSON, files.dump_json(params.coefficients_dict()).encode()),
        (out / PARAMS_DIR / INTERCEPT_JSON, files.dump_json(params.intercept_dict()).encode()),
    )
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
    written = [path for path, _ in contents]
    return written
