"""One exception family for the whole library.

The CLI turns every :class:`PpmlError` into a single ``Error: <where>: <what>`` line and a
non-zero exit status; anything else escaping the library is a bug.
"""
from __future__ import annotations


class PpmlError(Exception):
    """Base class of every error the library raises on bad input or state.

    Args:
        message: what is wrong and, where possible, how to fix it.
        source: the file (or ``<stdin>``) the problem was found in, if any.
    """

    exit_code = 1

    def __init__(self, message: str, source: str | None = None):
        super().__init__(message)
        self.message = message
        self.source = source

    def __reduce__(self):
        # Rebuild from the final message, whatever the subclass's constructor takes, so errors
        # raised in worker processes arrive intact.
        return (_rebuild, (type(self), self.message, self.source))

    def with_source(self, source: str) -> "PpmlError":
        """Attach the file name once it is known (readers deep down do not know it)."""
        if self.source is None:
            self.source = source
        return self

    def __str__(self) -> str:
        return f"{self.source}: {self.message}" if self.source else self.message


def _rebuild(cls, message, source):
    error = cls.__new__(cls)
    PpmlError.__init__(error, message, source)
    return error


class InputError(PpmlError):
    """Records or arguments that cannot be used (missing columns, unparseable values)."""

    exit_code = 3


class FeatureParseError(InputError):
    """A raw laptop value that the feature parser does not understand."""

    def __init__(self, row, column: str, value, expected: str):
        self.row, self.column, self.value = row, column, value
        super().__init__(f"row {row}, column {column!r}: cannot parse {value!r} ({expected})")


class EncodingRangeError(InputError):
    """A feature value outside the bounds the model declares: encrypting it would be wrong."""


class DocumentError(PpmlError):
    """A stage document (JSON) that is malformed, of an unknown format or version, or tampered."""

    exit_code = 3


class KeyFileError(PpmlError):
    """A key file that is missing, malformed, weak or unsafely stored."""


class KeyProofError(PpmlError):
    """A public key whose modulus proof is missing or does not verify: the company computes
    nothing with it (see :mod:`ppml.paillier.proof`)."""

    exit_code = 3


class KeyMismatchError(PpmlError):
    """A document made for another key or another model than the one in use."""

    exit_code = 4


class AnswerMismatchError(KeyMismatchError):
    """An answer that does not answer the request the customer sent (other ids, batch sizes or
    record count, another key or model), or a slot that decodes outside the range the model
    can reach over its declared bounds: refused before anything is printed or written."""


class ArtifactError(PpmlError):
    """A model artifact (pickle or parameter JSON) that cannot be trusted or loaded."""


class OutputError(PpmlError):
    """An output that cannot be written (exists and would be overwritten, folder not writable)."""


class WorkerError(PpmlError):
    """A worker process died (a signal, the out-of-memory killer) while a stage ran."""


class UnsupportedModelError(PpmlError):
    """An estimator ppml cannot score under encryption (not linear, not fitted, or with a step
    the customer could not reproduce exactly); the message names the class and why."""
