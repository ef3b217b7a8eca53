"""benchmarks/gpu_check.py in its CPU mode (tiny shapes), so the GPU script cannot rot: every
check runs, the JSON has every number, no attention call falls back to the math kernel, and the
script pulls in neither Ray nor MLflow nor the pipeline (a plain checkout with torch must do)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import sys, json
sys.argv = ["gpu_check"]
sys.path.insert(0, "benchmarks")
import gpu_check
code = gpu_check.main(["--cpu", "--json", sys.argv_json])
roots = sorted({name.split(".")[0] for name in sys.modules})
pipeline = sorted(name for name in sys.modules if name.split(".")[0] in ("pipeline", "contract"))
print("IMPORTS " + json.dumps({"roots": roots, "pipeline": pipeline, "code": code}))
"""


@pytest.mark.timeout(300)
def test_gpu_check_runs_in_cpu_mode_and_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = PROBE.replace("sys.argv_json", repr(str(out)))
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                               timeout=280)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    line = next(l for l in completed.stdout.splitlines() if l.startswith("IMPORTS "))
    imports = json.loads(line.removeprefix("IMPORTS "))
    assert imports["code"] == 0, completed.stdout[-3000:]
    assert not {"ray", "mlflow", "training", "unreal_bridge"} & set(imports["roots"]), imports["roots"]
    assert imports["pipeline"] == []  # model/ imports nothing of ours: it raises its own ModelError (model/errors.py)

    report = json.loads(out.read_text())
    assert report["cpu_mode"] and not [k for k in report if k.endswith("_error")]
    assert report["a_numerics"]["ok"] and 0 <= report["a_numerics"]["grad_rel_err"] < 0.1
    backends = {k: v for k, v in report["b_backends"].items() if isinstance(v, list)}
    assert set(backends) == {"diff_v1_masked", "diff_v1_unmasked", "diff_v2_masked", "diff_v2_unmasked"}
    assert all(v and "math" not in v for v in backends.values()), backends
    for kind in ("diff_v1", "diff_v2"):
        assert report["c_block"][kind]["seconds"] > 0 and report["c_block"][kind]["tflops"] > 0
    assert report["c_base_fsdp"]["seconds"] > 0 and report["e_sampler"]["frames"] == 5
    assert "(b) SDPA diff_v2_masked" in completed.stdout  # the printed table
