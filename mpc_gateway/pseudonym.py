"""Persons' national identifiers, normalised: one spelling per person before it is pseudonymised.

Companies are matched across institutions by their LEI, which is public. Persons
are matched by a pseudonym of their national identifier under a key the nodes
hold jointly (:mod:`mpc_gateway.oprf`): no node, gateway or analyst can compute
one alone. Every party that pseudonymises an identifier first writes it the
same way (:func:`normalise_national_id`), so "850101-1234" and " 850101 1234 "
are one person.
"""

from __future__ import annotations

import unicodedata

from mpc_gateway.errors import InvalidRequestError

__all__ = ["normalise_national_id"]

_SEPARATORS = str.maketrans("", "", " \t-./")


def normalise_national_id(text: str) -> str:
    """One spelling per identifier: NFKC, no spaces, dashes, dots or slashes, upper case."""
    normal = unicodedata.normalize("NFKC", text).translate(_SEPARATORS).upper()
    if not normal:
        raise InvalidRequestError("an empty national identifier has no pseudonym")
    return normal
