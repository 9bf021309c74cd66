"""The threshold OPRF the pseudonym benchmark costs: any t + 1 nodes give the key's pseudonym."""

from __future__ import annotations

from itertools import combinations

import pytest

from benchmarks.threshold_oprf import blind, deal, evaluate, finish, pseudonym_with_key

ID = "NID-000000042"


def test_every_t_plus_1_nodes_compute_the_pseudonym_the_whole_key_gives() -> None:
    key, shares = deal(5, 2)
    expected = pseudonym_with_key(ID, key)
    for parties in combinations(range(1, 6), 3):
        r, blinded = blind(ID)
        answers = {i: evaluate(shares.shares[i], blinded) for i in parties}
        assert finish(ID, r, answers, shares.t) == expected
    assert pseudonym_with_key("NID-000000043", key) != expected


def test_t_nodes_are_not_enough_and_a_wrong_share_gives_another_pseudonym() -> None:
    key, shares = deal(3, 1)
    r, blinded = blind(ID)
    with pytest.raises(ValueError, match="t \\+ 1 = 2"):
        finish(ID, r, {1: evaluate(shares.shares[1], blinded)}, shares.t)
    forged = {1: evaluate(shares.shares[1], blinded), 2: evaluate(shares.shares[2] + 1, blinded)}
    assert finish(ID, r, forged, shares.t) != pseudonym_with_key(ID, key)


def test_blinded_requests_are_fresh_and_nodes_refuse_what_is_not_a_group_point() -> None:
    _, shares = deal(3, 1)
    assert blind(ID)[1] != blind(ID)[1]  # a node cannot link two requests for one id
    with pytest.raises(ValueError, match="prime-order subgroup"):
        evaluate(shares.shares[1], bytes(32))  # y = 0: a point of small order
    with pytest.raises(ValueError, match="prime-order subgroup"):
        evaluate(shares.shares[1], b"\x01" * 31)
