"""Errors a person sees when a fingerprint input cannot be used: each names the file and what is wrong."""

from __future__ import annotations


class BiometricInputError(ValueError):
    """A fingerprint image or record that cannot be used; `str()` is one line for the operator or the CLI."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(f"{path}: {what}")
        self.path = path
        self.what = what
