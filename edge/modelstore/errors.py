"""Errors of the model store (they extend the edge's tree in :mod:`edge.errors`).

    ModelError
    └── BundleRefused    a bundle (or a stored model) failed verification: damaged, altered,
                         signed by a key that is not trusted, unsigned, or its card does not match
    EdgeError
    └── StoreError       the store cannot do what was asked (nothing to promote, no previous model,
                         the registry or the state folder is unreadable or not writable)
"""

from __future__ import annotations

from edge.errors import EdgeError, ModelError


class BundleRefused(ModelError):
    """A model bundle is not accepted; the message says which file and why, in one line."""


class StoreError(EdgeError):
    """A model store action is not possible now; the message says why."""
