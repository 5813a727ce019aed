"""ppml — privacy-preserving linear-model inference with the Paillier cryptosystem."""

__version__ = "0.1.0"


def __getattr__(name):
    """``ppml.export(estimator, X_train, out_dir, …)``, the function
    :func:`ppml.exporting.export`, imported on first use so that ``import ppml`` stays light
    (no scikit-learn, pandas or numpy)."""
    if name == "export":
        from .exporting import export

        return export
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
