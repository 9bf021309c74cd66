"""``mpcgw model``: model files, weights files, sealing the weights to the nodes, registering."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from mpc_gateway.cli.model import load_model_file, load_weights_file, seal_weights_file
from mpc_gateway.client import GatewayClient
from mpc_gateway.computations.scoring import ScoringModel, open_weight_share
from mpc_gateway.errors import IntegrityError, InvalidQueryError, PolicyDeniedError
from mpc_gateway.pki import ConsortiumLayout, Identity, init_consortium
from mpc_gateway.pki.sealing import node_certificates
from tests.unit import cli_cases
from tests.unit.cli_cases import NODES, _invoke, _pki, _write

layout = cli_cases.layout  # the module-scoped fixture, so that pytest finds it here

ALICE = "analyst/alice"
WEIGHTS = [8_388_593, -7_340_011, 6_291_469]  # distinctive: must not appear in what is sent
INTERCEPT = -5_242_877


def _secret_model(**changes: Any) -> dict[str, Any]:
    return {
        "name": "pd-test",
        "kind": "logistic",
        "features": [
            {"name": "total_exposure", "scale": 100_000_000},
            {"name": "any_default"},
            {"name": "worst_rating"},
        ],
        "frac_bits": 16,
        "weight_bits": 24,
        "weights_secret": True,
        "threshold": "0.25",
        "output": "decisions",
        **changes,
    }


def _public_model(**changes: Any) -> dict[str, Any]:
    fields = {
        **_secret_model(),
        "name": "pd-public",
        "weights_secret": False,
        "weights": [3277, 144179, 29491],
        "intercept": -222822,
        **changes,
    }
    return fields


# --- model files, weights files, sealing ------------------------------------------------------


def test_the_owner_is_filled_in_with_your_identity(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.json", _public_model())
    model = load_model_file(path, ALICE)
    assert model.owner == ALICE and model.weights == (3277, 144179, 29491)
    assert load_model_file(_write(tmp_path / "n.json", _public_model(owner=ALICE)), ALICE) == model


def test_a_model_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.json", _public_model(owner="analyst/bob"))
    with pytest.raises(PolicyDeniedError, match="owned by 'analyst/bob'"):
        load_model_file(path, ALICE)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[1, 2", "is not JSON"),
        ([1, 2], "one JSON object"),
        (_public_model(kind="probit"), "kind"),
        (_public_model(weights=[1, 2]), "one weight per feature"),
        (_secret_model(weights=[1, 2, 3]), "must not carry weights"),
    ],
)
def test_invalid_model_files_are_refused(tmp_path: Path, content: Any, problem: str) -> None:
    with pytest.raises(InvalidQueryError, match=problem):
        load_model_file(_write(tmp_path / "m.json", content), ALICE)


def _model() -> ScoringModel:
    return ScoringModel.model_validate({**_secret_model(), "owner": ALICE})


def test_a_weights_file_holds_fixed_point_integers(tmp_path: Path) -> None:
    path = _write(tmp_path / "w.json", {"weights": WEIGHTS, "intercept": INTERCEPT})
    assert load_weights_file(path, _model()) == (WEIGHTS, INTERCEPT)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{", "is not JSON"),
        ({"weights": [1, 2, 3]}, "must hold exactly"),
        ({"weights": [1, 2, 3], "intercept": 0, "bias": 1}, "must hold exactly"),
        ({"weights": [0.05, 2, 3], "intercept": 0}, r"round\(w \* 2\*\*16\)"),
        ({"weights": [True, 2, 3], "intercept": 0}, "fixed-point integers"),
        ({"weights": [1, 2, 3], "intercept": -3.4}, "intercept"),
        ({"weights": "1,2,3", "intercept": 0}, "must be a list"),
        ({"weights": [1, 2], "intercept": 0}, "2 weights; the model has 3 features"),
        ({"weights": [1, 2, 1 << 24], "intercept": 0}, r"\|w\| < 2\*\*24"),
        ({"weights": [1, 2, 3], "intercept": -(1 << 24)}, r"\|w\| < 2\*\*24"),
    ],
)
def test_invalid_weights_files_are_refused(tmp_path: Path, content: Any, problem: str) -> None:
    with pytest.raises(InvalidQueryError, match=problem):
        load_weights_file(_write(tmp_path / "w.json", content), _model())


def test_node_certificates_come_in_party_order(layout: ConsortiumLayout) -> None:
    certs = node_certificates(layout.root)
    assert tuple(certs) == NODES
    for node, pem in certs.items():
        path = layout.tls_paths(Identity("node", node, layout.trust_domain))[0]
        assert pem == path.read_bytes()


def test_a_node_certificate_swapped_for_another_is_refused(
    layout: ConsortiumLayout, tmp_path: Path
) -> None:
    copy = Path(shutil.copytree(layout.root, tmp_path / "pki"))
    shutil.copy(copy / "node" / "bank-b" / "tls.crt", copy / "node" / "bank-a" / "tls.crt")
    with pytest.raises(IntegrityError, match="certifies node/bank-b, not node bank-a"):
        node_certificates(copy)
    foreign = init_consortium(tmp_path / "other", nodes=NODES)  # same names, another CA
    shutil.copy(foreign.root / "node" / "bank-a" / "tls.crt", copy / "node" / "bank-a" / "tls.crt")
    with pytest.raises(IntegrityError, match="not a certificate the consortium CA issued"):
        node_certificates(copy)


def _opened(layout: ConsortiumLayout, model: ScoringModel, sealed: Any) -> list[list[int]]:
    shares = []
    for node in NODES:
        key = layout.tls_paths(Identity("node", node, layout.trust_domain))[1].read_bytes()
        shares.append(open_weight_share(model, sealed, node, key))
    return shares


def test_sealing_gives_one_share_per_node_that_add_up_to_the_weights(
    layout: ConsortiumLayout, tmp_path: Path
) -> None:
    model = _model()
    weights = _write(tmp_path / "w.json", {"weights": WEIGHTS, "intercept": INTERCEPT})
    sealed = seal_weights_file(model, weights, layout.root)
    assert sealed.model_id == model.model_id and tuple(sealed.shares) == NODES
    shares = _opened(layout, model, sealed)
    assert [sum(column) for column in zip(*shares)] == [*WEIGHTS, INTERCEPT]
    assert all(share != [*WEIGHTS, INTERCEPT] for share in shares)


def test_register_seals_locally_and_sends_no_plaintext_weight(
    layout: ConsortiumLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[Any] = []

    def register(client: GatewayClient, model: ScoringModel, sealed: Any = None) -> str:
        sent.append((model, sealed))
        return model.model_id

    monkeypatch.setattr(GatewayClient, "register_model", register)
    model_file = _write(tmp_path / "m.json", _secret_model())  # no owner: filled in
    weights = _write(tmp_path / "w.json", {"weights": WEIGHTS, "intercept": INTERCEPT})
    result = _invoke("model", "register", str(model_file), "--weights", str(weights), *_pki(layout))
    assert result.exit_code == 0, result.output
    ((model, sealed),) = sent
    assert model.owner == ALICE and model.weights is None
    assert result.stdout.strip() == model.model_id  # the id alone on stdout, for scripts
    assert "sealed to bank-a, bank-b, broker-c" in result.stderr
    request = model.model_dump_json() + sealed.model_dump_json()
    assert not any(str(abs(w)) in request for w in (*WEIGHTS, INTERCEPT))
    shares = _opened(layout, model, sealed)
    assert [sum(column) for column in zip(*shares)] == [*WEIGHTS, INTERCEPT]


@pytest.mark.parametrize(
    ("model", "with_weights", "problem"),
    [
        (_secret_model(), False, "has secret weights: give them with --weights"),
        (_public_model(), True, "carries public weights; --weights is for weights_secret"),
        (_public_model(owner="analyst/bob"), False, "owned by 'analyst/bob'"),
        (_public_model(name="PD 2027"), False, "'^[a-z_][a-z0-9_-]{0,62}$'"),  # shown verbatim
    ],
)
def test_register_refuses_what_the_gateway_would_refuse_without_calling_it(
    layout: ConsortiumLayout,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model: dict[str, Any],
    with_weights: bool,
    problem: str,
) -> None:
    def unreachable(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("the gateway was called")

    monkeypatch.setattr(GatewayClient, "register_model", unreachable)
    weights = _write(tmp_path / "w.json", {"weights": WEIGHTS, "intercept": INTERCEPT})
    extra = ["--weights", str(weights)] if with_weights else []
    result = _invoke(
        "model", "register", str(_write(tmp_path / "m.json", model)), *extra, *_pki(layout)
    )
    assert result.exit_code in (2, 3)
    assert result.output.startswith("error: ")
    assert problem in " ".join(result.output.split())
