"""The threshold OPRF of persons' pseudonyms and its key ceremony, attacked as a node would."""

from __future__ import annotations

import base64
import json
from itertools import combinations
from pathlib import Path

import pytest

from mpc_gateway.errors import ConfigurationError, IntegrityError, InvalidRequestError
from mpc_gateway.oprf import (
    Answer,
    Blinded,
    KeyShare,
    L,
    PublicKey,
    blind,
    check_points,
    check_share,
    combine_deals,
    deal,
    evaluate,
    finish,
    joint_key,
    load_key_share,
    prove,
    pseudonyms_with_key,
    save_key_share,
    shares_in_one_process,
)
from mpc_gateway.oprf.ceremony import _info, combine_ceremony, write_deal
from mpc_gateway.oprf.protocol import _SIDE_BY_SIDE
from mpc_gateway.pki import Identity, init_consortium
from mpc_gateway.pki.receiver import load_receiver_key, open_sealed

IDS = ["NID-000000042", "NID-000000043"]
MANY = [f"NID-{i:09d}" for i in range(_SIDE_BY_SIDE + 2)]  # finished on the pool
NODES = ("bank-a", "bank-b", "broker-c")


def _answer(share: int, blinded: list[Blinded]) -> Answer:
    """What a node sends: every point raised to its share, and its proof."""
    points = [b.point for b in blinded]
    answers = evaluate(share, check_points(points))
    return Answer(answers, prove(share, points, answers))


def _answers(keys: list[KeyShare], xs: tuple[int, ...], blinded: list) -> dict[int, Answer]:
    return {x: _answer(keys[x - 1].share, blinded) for x in xs}


def test_any_t_plus_1_nodes_give_the_pseudonyms_of_the_joint_key() -> None:
    keys = shares_in_one_process(5, 2)
    expected = pseudonyms_with_key(IDS, joint_key(keys[2:]))  # another set of shares, the same key
    assert expected[0] != expected[1] and len(expected[0]) == 64
    for xs in combinations(range(1, 6), 3):
        blinded = [blind(x) for x in IDS]
        assert finish(blinded, _answers(keys, xs, blinded), keys[0].public) == expected
    # a national id is normalised as the institutions write it
    one = [blind("nid 000000042")]
    assert finish(one, _answers(keys, (1, 2, 3), one), keys[4].public) == expected[:1]
    # many ids are finished side by side on a pool, in slices: each id keeps its place
    blinded = [blind(x) for x in MANY]
    assert finish(blinded, _answers(keys, (2, 4, 5), blinded), keys[0].public) == (
        pseudonyms_with_key(MANY, joint_key(keys[2:]))
    )


@pytest.mark.parametrize("ids", [IDS, MANY], ids=["in the calling thread", "on the pool"])
def test_t_nodes_are_not_enough_and_a_wrong_or_replaced_answer_is_caught(ids: list[str]) -> None:
    keys = shares_in_one_process(3, 1)
    public = keys[0].public
    blinded = [blind(x) for x in ids]
    with pytest.raises(IntegrityError, match="t \\+ 1 = 2"):
        finish(blinded, _answers(keys, (1,), blinded), public)
    answers = _answers(keys, (1, 2), blinded)  # only t + 1 answer: each is still checked
    answers[2] = _answer(keys[1].share + 1, blinded)  # a node with a wrong share, proving it
    with pytest.raises(IntegrityError, match="party 2's answers do not prove"):
        finish(blinded, answers, public)
    honest = _answer(keys[1].share, blinded)
    for forged in (
        Answer(list(reversed(honest.points)), honest.proof),  # answers swapped on the way
        Answer(honest.points, honest.proof[:32] + bytes(32)),
        Answer(honest.points, _answer(keys[2].share, blinded).proof),  # another node's proof
    ):
        with pytest.raises(IntegrityError, match="party 2's answers do not prove"):
            finish(blinded, {1: answers[1], 2: forged}, public)
    with pytest.raises(IntegrityError, match=f"answered 1 of {len(ids)}"):
        finish(blinded, {1: answers[1], 2: Answer(honest.points[:1], honest.proof)}, public)
    # with a third node, one wrong answer is outvoted: the two that prove theirs give the result
    three = {**answers, 3: _answer(keys[2].share, blinded)}
    assert finish(blinded, three, public) == pseudonyms_with_key(ids, joint_key(keys))
    three[1] = Answer(honest.points, honest.proof)  # party 1 now sends party 2's answers
    with pytest.raises(IntegrityError, match="party 1, 2's answers do not prove"):
        finish(blinded, three, public)
    assert finish(blinded, {1: answers[1], 2: honest}, public) == pseudonyms_with_key(
        ids, joint_key(keys)
    )


def test_public_shares_must_be_shares_of_the_public_key() -> None:
    keys = shares_in_one_process(3, 1)
    keys[0].public.check()
    shares = list(keys[0].public_shares)
    shares[2] = shares[1]
    with pytest.raises(IntegrityError, match="not shares of the public key"):
        PublicKey(1, keys[0].public_key, tuple(shares)).check()
    with pytest.raises(IntegrityError, match="not shares of the public key"):
        PublicKey(1, keys[0].public_shares[0], keys[0].public_shares).check()


def test_blinded_ids_are_fresh_and_nodes_refuse_what_is_not_a_group_point() -> None:
    keys = shares_in_one_process(3, 1)
    assert blind(IDS[0]).point != blind(IDS[0]).point  # a node cannot link two requests
    for bad in (bytes(32), b"\x01" * 31, b"\xff" * 32):  # small order, short, not on the curve
        with pytest.raises(InvalidRequestError, match="prime-order subgroup"):
            evaluate(keys[0].share, check_points([bad]))
    with pytest.raises(InvalidRequestError, match="empty"):
        blind(" - ")


def test_a_dealer_whose_value_does_not_match_its_commitments_is_named() -> None:
    deals = [deal(d, 3, 1) for d in (1, 2, 3)]
    values = {d.dealer: d.shares[2] for d in deals}
    assert check_share(deals[0].commitments, 2, values[1])
    values[3] = (values[3] + 1) % L
    with pytest.raises(IntegrityError, match="dealer 3's value for party 2"):
        combine_deals(2, 3, {d.dealer: d.commitments for d in deals}, values)
    with pytest.raises(IntegrityError, match="one deal from every node"):
        combine_deals(2, 3, {d.dealer: d.commitments for d in deals[:2]}, {1: 1, 2: 2})


def test_a_key_share_file_is_private_and_checked(tmp_path: Path) -> None:
    key = shares_in_one_process(3, 1)[0]
    path = tmp_path / "share.json"
    save_key_share(path, key)
    assert load_key_share(path) == key
    with pytest.raises(ConfigurationError, match="never overwritten"):
        save_key_share(path, key)
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="accessible to others"):
        load_key_share(path)
    path.chmod(0o600)
    data = json.loads(path.read_text())
    data["share"] = (key.share + 1).to_bytes(32, "little").hex()
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigurationError, match="does not match its public share"):
        load_key_share(path)


def test_the_ceremony_in_files_gives_every_node_a_share_of_one_key(tmp_path: Path) -> None:
    pki = init_consortium(tmp_path / "pki", nodes=NODES)
    deals = [write_deal(pki.root, n, tmp_path / f"{n}.deal.json") for n in NODES]
    # what travels reveals no value: each opens with its recipient's key only
    sent = json.loads(deals[0].read_text())
    sealed = base64.b64decode(sent["sealed"]["bank-b"])
    info = _info(pki.trust_domain, "bank-a", "bank-b", sent["commitments"])
    for name, opens in (("bank-b", True), ("bank-a", False), ("broker-c", False)):
        key = load_receiver_key(*pki.sealing_paths(Identity("node", name, pki.trust_domain)))
        if opens:
            assert len(open_sealed(sealed, key.private_key, info, "value")) == 32
        else:
            with pytest.raises(IntegrityError):
                open_sealed(sealed, key.private_key, info, "value")
    keys = [combine_ceremony(pki.root, n, deals, tmp_path / n / "key.json") for n in NODES]
    assert {k.public_key for k in keys} == {keys[0].public_key}
    assert [k.party for k in keys] == [1, 2, 3] and keys[0].threshold == 1
    assert joint_key(keys[:2]) == joint_key(keys[1:])
    blinded = [blind(x) for x in IDS]
    assert finish(
        blinded, _answers(keys, (1, 2, 3), blinded), keys[1].public
    ) == pseudonyms_with_key(IDS, joint_key(keys))


def test_the_ceremony_refuses_a_forged_or_replayed_deal(tmp_path: Path) -> None:
    pki = init_consortium(tmp_path / "pki", nodes=NODES)
    deals = [write_deal(pki.root, n, tmp_path / f"{n}.deal.json") for n in NODES]
    forged = json.loads(deals[1].read_text())
    forged["commitments"][0] = forged["commitments"][1]  # the gateway's operator alters it
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    with pytest.raises(IntegrityError, match="forged.json \\(bank-b\\) is refused: .*signature"):
        combine_ceremony(
            pki.root, "bank-a", [deals[0], tmp_path / "forged.json", deals[2]], tmp_path / "k"
        )
    with pytest.raises(IntegrityError, match="bank-a dealt twice"):
        combine_ceremony(pki.root, "bank-b", [deals[0], deals[0], deals[2]], tmp_path / "k")
    with pytest.raises(IntegrityError, match="one deal from every node"):
        combine_ceremony(pki.root, "bank-b", deals[:2], tmp_path / "k")
    other = init_consortium(tmp_path / "other", nodes=NODES)
    with pytest.raises(IntegrityError, match="signature"):  # another CA's bank-c signed it
        combine_ceremony(
            pki.root,
            "bank-a",
            [write_deal(other.root, "bank-b", tmp_path / "o.json"), *deals[::2]],
            tmp_path / "k",
        )
    assert not (tmp_path / "k").exists()
