"""Shipped models must keep their accuracy on real images (see tests/quality_gate.py).

Needs ``../shared/data/dsb2018-fluo`` beside the checkout (CI has it). Without it
the tests skip with the reason, except under CI (``CI`` set), where a missing
data folder is a failure: a gate that silently skips guards nothing.
"""

import os

import numpy as np
import pytest

import quality_gate as qg
from nucleiseg.perturbations import PERTURBATIONS

if not (qg.DATA / "manifest.csv").is_file():
    if os.environ.get("CI"):
        raise RuntimeError(f"CI is set but the quality gate's data folder {qg.DATA} is missing")
    pytest.skip(f"quality gate: data folder {qg.DATA} not found (set NUCLEISEG_DATA)", allow_module_level=True)

RECORDED = qg.read_record()


def test_every_shipped_model_has_a_gate_and_a_recorded_figure():
    from nucleiseg import model_types

    assert {str(gate.card) for gate in qg.GATES} == {str(card) for card in model_types.shipped_cards()}
    # Every perturbed gate names a perturbation the robustness benchmark knows.
    assert all(gate.perturbation in PERTURBATIONS for gate in qg.GATES if gate.perturbation)
    assert set(RECORDED) == {gate.name for gate in qg.GATES}


@pytest.mark.parametrize("gate", qg.GATES, ids=[gate.name for gate in qg.GATES])
def test_shipped_model_keeps_its_recorded_accuracy(gate):
    f1, stems = qg.run_gate(gate)
    recorded = RECORDED[gate.name]
    assert stems == recorded["images"], "the gate's image rule picks other images than when it was recorded"
    assert f1 >= recorded["f1_mean"] - qg.TOLERANCE, (
        f"{gate.name}: mean F1 {f1:.4f} on {len(stems)} val images, recorded {recorded['f1_mean']:.4f} "
        f"(tolerance {qg.TOLERANCE})")


def test_the_gate_fails_for_degraded_weights():
    """The gate is sharp enough: the general U-Net with slightly perturbed weights falls below its bar."""
    from nucleiseg import cards

    gate = qg.GATES[0]
    model = cards.load(gate.card, engine="tensorflow")  # Keras weights, to perturb in place
    network = model.networks[0]
    original = network.get_weights()
    rng = np.random.default_rng(0)
    try:
        # 30 % multiplicative noise on every kernel: a plausible corrupted or half-trained network.
        network.set_weights([w * (1 + 0.3 * rng.standard_normal(w.shape)).astype(w.dtype) if w.ndim == 4 else w
                             for w in original])
        degraded = qg.score(model, RECORDED[gate.name]["images"], settings=cards.tuned_postprocess(gate.card),
                            match_size=gate.match_size)
    finally:
        network.set_weights(original)
    assert degraded < RECORDED[gate.name]["f1_mean"] - qg.TOLERANCE
