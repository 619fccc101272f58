"""The committed standalone reference of study v2: a round trip, and refusals of a file that belongs to other inputs;
and the power calculation of bench/study_power.py on a tiny grid."""

import json
import sys
from pathlib import Path

import pytest

from magic_bert.analysis.study_reference import file_digest, load_reference, save_reference
from magic_bert.errors import InputError

REPO = Path(__file__).resolve().parents[1]
CHILDREN = [["mha:2", "ffn:64"], ["identity", "conv:3"], ["ffn:64", "ffn:64"]]
FINGERPRINT = {"vocab_sha256": "v", "train_sha256": "t", "eval_blocks": 16}


def runs(offset):
    return [{"eval_loss": 5.0 + offset + i, "eval_accuracy": 0.1, "num_tokens": 99, "train_steps": 20,
             "length_losses": {"10": 6.0 + i, "20": 5.0 + offset + i}} for i in range(3)]


def test_reference_round_trip(tmp_path):
    path = tmp_path / "ref.json"
    assert load_reference(path, FINGERPRINT, CHILDREN) is None
    save_reference(path, FINGERPRINT, CHILDREN, {0: runs(0), 1: runs(0.5)}, {"max_train_steps": 20})
    data = load_reference(path, FINGERPRINT, CHILDREN)
    assert [c["arch"] for c in data["children"]] == CHILDREN
    assert data["children"][2]["per_seed"]["1"] == {"eval_loss": 7.5, "eval_accuracy": 0.1,
                                                    "length_losses": {"10": 8.0, "20": 7.5}, "num_tokens": 99}
    assert "train_steps" not in data["children"][0]["per_seed"]["0"]  # only what the reference needs


def test_reference_for_other_inputs_is_refused_naming_what_differs(tmp_path):
    path = tmp_path / "ref.json"
    save_reference(path, FINGERPRINT, CHILDREN, {0: runs(0)}, {})
    with pytest.raises(InputError, match=r"belongs to other inputs \(eval_blocks, train_sha256 differ\)"):
        load_reference(path, FINGERPRINT | {"train_sha256": "x", "eval_blocks": 32}, CHILDREN)
    with pytest.raises(InputError, match="other children"):
        load_reference(path, FINGERPRINT, CHILDREN[:2])
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(InputError, match="not a standalone reference"):
        load_reference(tmp_path / "other.json", FINGERPRINT, CHILDREN)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputError, match="not readable JSON"):
        load_reference(tmp_path / "broken.json", FINGERPRINT, CHILDREN)


def test_file_digest_is_sha256_of_the_bytes(tmp_path):
    import hashlib

    (tmp_path / "f").write_bytes(b"abc" * 1000)
    assert file_digest(tmp_path / "f") == hashlib.sha256(b"abc" * 1000).hexdigest()


def test_power_calculation_fits_the_pilot_and_writes_its_cells(tmp_path):
    sys.path.insert(0, str(REPO / "bench"))
    import study_power

    out = tmp_path / "power.json"
    report = study_power.main(["--children", "16", "--seeds", "2", "--simulations", "10", "--bootstrap_samples",
                               "100", "--output", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    expected = report["expected_tau"]
    assert expected["spos"] == pytest.approx(0.639, abs=1e-9)  # the pilot's SPOS τ against a 2-seed reference
    truth = report["expected_tau_against_truth"]  # the effect is a gain against the true quality
    assert truth["magic-at"] - truth["spos"] == pytest.approx(0.10, abs=1e-9)
    assert 0 < expected["magic-at"] - expected["spos"] < 0.10  # seen through the noisy reference: less
    (cell,) = report["cells"]
    assert (cell["children"], cell["seeds"]) == (16, 2) and 0 <= cell["power"] <= 1
    with pytest.raises(SystemExit, match="--children must be comma-separated"):
        study_power.main(["--children", "2", "--output", str(tmp_path / "never.json")])
    assert not (tmp_path / "never.json").exists()
