"""The sentences every computation's dry run uses to say who learns what."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["nodes_learn", "gateway_relays", "helpers_learn"]


def nodes_learn(institutions: Sequence[str], what: str) -> dict[str, str]:
    """The disclosure sentence for the nodes: they learn the request and ``what``."""
    nodes = ", ".join(institutions) or "the nodes"
    return {"to": nodes, "text": f"{nodes} learn {what}, not each other's inputs"}


def gateway_relays(analyst: str, learns: str = "") -> dict[str, str]:
    """The disclosure sentence for the gateway: it relays a result sealed to ``analyst``.

    ``learns``: what it does see (the blocks a computation opens to steer itself).
    """
    text = (
        f"the gateway relays the result sealed to {analyst}'s key: it learns that it was "
        "released, its size and digest, not its values"
    )
    if learns:
        text += f"; it learns {learns}"
    return {"to": "gateway", "text": text + "; it learns no institution's contribution"}


def helpers_learn(helpers: Sequence[str]) -> dict[str, str]:
    """The disclosure sentence for data-less helper nodes (any computation)."""
    names = ", ".join(helpers)
    one = len(helpers) == 1
    is_, it, its = (
        ("is a helper node", "it", "its") if one else ("are helper nodes", "they", "their")
    )
    return {
        "to": names,
        "text": f"{names} {is_} holding no data: {its} inputs are zeros, so {it} never "
        f"count{'s' * one} as an institution (not towards min_institutions, not as knowing an "
        f"entity); {it} learn{'s' * one} what every node learns, and {its} shares alone reveal "
        "nothing",
    }
