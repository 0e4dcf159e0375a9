"""The one shape of every verification's answer: a result that always exists.

Validating a certificate (:func:`iranpki.validation.validate_certificate`), verifying a signed
PDF, CMS, S/MIME message or PE (:mod:`iranpki.signing`) and verifying a file of any of these
kinds (:func:`iranpki.verify.verify_file`) each return a :class:`Verdict`. It says ``ok``, and
when not, ``error`` is the error of :mod:`iranpki.errors` that says why (a
:class:`~iranpki.errors.CertificateValidationError` subclass, a
:class:`~iranpki.errors.SignatureValidationError`). A caller that wants an exception calls
``raise_for_error()``. What cannot be verified at all (not a certificate, an unknown option)
raises, as every check of the caller's input does.
"""

from __future__ import annotations

from typing import TypeVar

from .errors import ValidationError

__all__ = ["Verdict"]

V = TypeVar("V", bound="Verdict")


class Verdict:
    """Base of every verification result: ``error`` (None when it verified), ``ok``,
    ``raise_for_error()`` and ``to_dict()`` (JSON-ready)."""

    #: Why it failed, as an error of the tree; None when it verified.
    error: ValidationError | None

    @property
    def ok(self) -> bool:
        return self.error is None

    def raise_for_error(self: V) -> V:
        """Raise ``error`` when the verification failed; return the result when it succeeded."""
        error = self.error
        if error is not None:
            raise error
        return self

    def to_dict(self) -> dict[str, object]:
        raise NotImplementedError
