"""Where the bundled laptop model lives, so that the commands work outside a checkout.

The repository keeps the laptop model's files at its root (``col_tnf.pkl``,
``PreProcessingDataAndModel.pkl``, ``Encrypted_ModelParameters/``, ``Data/laptop_data.csv``),
where the three scripts find them. Building a wheel copies them into the package as
``ppml/laptop_model/`` (``setup.py``), so an installed toolkit carries the same model. The
commands' defaults use the current folder when it holds a model and this bundled copy
otherwise.
"""
from __future__ import annotations

from pathlib import Path

#: The files of the laptop model, relative to a model folder; ``setup.py`` copies them into
#: the wheel (those that exist: an exported model's allowlists are optional).
MODEL_FILES = ("col_tnf.pkl", "col_tnf.allow.json", "PreProcessingDataAndModel.pkl",
               "PreProcessingDataAndModel.allow.json", "Encrypted_ModelParameters/Model.json",
               "Encrypted_ModelParameters/Coefficients.json", "Encrypted_ModelParameters/Intercept.json",
               "Data/laptop_data.csv")
PACKAGE_FOLDER = "laptop_model"
_PARAMS = "Encrypted_ModelParameters"


def laptop_model_dir() -> Path:
    """The bundled laptop model: ``ppml/laptop_model/`` in an installed wheel, the repository's
    root in a checkout (and in an editable install, which runs from the checkout)."""
    package = Path(__file__).resolve().parent
    installed = package / PACKAGE_FOLDER
    return installed if (installed / "col_tnf.pkl").is_file() else package.parent


def default_model_dir() -> str:
    """``--model``'s default: the current folder if it holds a model's public files (then any
    fault in them is reported, not papered over), else the bundled laptop model."""
    if Path("col_tnf.pkl").exists() or Path(_PARAMS, "Model.json").exists():
        return "."
    return str(laptop_model_dir())


def default_params_dir() -> str:
    """``--params``'s default: ``Encrypted_ModelParameters/`` if the current folder has one,
    else the bundled laptop model's."""
    return _PARAMS if Path(_PARAMS).exists() else str(laptop_model_dir() / _PARAMS)
