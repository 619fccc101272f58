import json
import subprocess
import sys
from pathlib import Path

RECIPE = Path(__file__).parents[1] / "recipes" / "demo.py"


def test_demo_runs_offline_and_every_check_is_exact(tmp_path):
    out = tmp_path / "demo"
    done = subprocess.run([sys.executable, str(RECIPE), "--output_dir", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "demo_results.json").read_text())
    assert all(row["export_max_abs_diff"] <= 1e-5 for row in results["children"])
    assert results["auto_reload_max_abs_diff"] <= 1e-5 and results["to_bert_max_abs_diff"] <= 1e-5
    assert results["bert_class"] == "BertForMaskedLM"
    assert (out / "child" / "model.safetensors").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".demo-")]  # staging folder renamed away
    again = subprocess.run([sys.executable, str(RECIPE), "--output_dir", str(out)], capture_output=True, text=True,
                           timeout=300)
    assert again.returncode != 0 and "exists and is not empty" in again.stderr
