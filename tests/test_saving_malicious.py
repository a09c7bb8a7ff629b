"""The hostile-file corpus (../shared/malicious): every refusal is a clear error, no payload
runs, and each load stays within 2 s and 300 MB, measured in a fresh subprocess."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CORPUS = SHARED / "malicious"
REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="shared malicious corpus (../shared/malicious) is absent")

TIME_LIMIT_S = 2.0
MEMORY_LIMIT_MB = 300


def _native_complete():
    from amber import _native

    return all(hasattr(_native, n) for n in ("Archive", "H5File", "safetensors_load"))


def _manifest():
    if not CORPUS.is_dir():
        return {"cases": [], "target_models": {}}
    return json.loads((CORPUS / "MANIFEST.json").read_text())


RUNNER = textwrap.dedent(
    """
    import json, resource, sys, time
    import numpy as np
    import amber
    from amber import saving
    from amber.saving import keras_file

    case = json.loads(sys.argv[1])
    target = json.loads(sys.argv[2])
    result = {"ok": False, "error": None, "type": None}
    start = time.perf_counter()
    try:
        path = case["path"]
        if case["api"] == "load_model":
            model = saving.load_model(path)
            out = model.predict(np.ones((1, 32), dtype="float32"), verbose=0)
            result["control"] = float(np.asarray(out).reshape(-1)[0])
        elif case["api"] == "load_weights":
            model = keras_file.model_from_config(target, compile=False)
            model.load_weights(path)
            out = model.predict(np.ones((1, 32), dtype="float32"), verbose=0)
            result["control"] = float(np.asarray(out).reshape(-1)[0])
        else:
            tensors = saving.load_safetensors(path)
            result["control"] = float(np.asarray(tensors["dense/kernel"]).sum() + np.asarray(tensors["dense/bias"]).sum())
        result["ok"] = True
    except BaseException as e:
        result["error"] = str(e)[:2000]
        result["type"] = type(e).__name__
    result["seconds"] = time.perf_counter() - start
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))
    """
)


def _cases():
    manifest = _manifest()
    return [pytest.param(c, id=c["id"]) for c in manifest["cases"]]


def _canaries(case, tmp_path):
    return [tmp_path / f"canary_{case['id']}", Path(f"/tmp/amber_canary_{case['id']}")]


@pytest.mark.parametrize("case", _cases())
def test_malicious_corpus_contract(case, tmp_path):
    if not _native_complete():
        pytest.skip("the native archive/HDF5/safetensors readers are not in this build of amber._native yet")
    manifest = _manifest()
    target = manifest["target_models"].get(case.get("target_model") or "", {}).get("config", {})
    dynamic, static = _canaries(case, tmp_path)
    for canary in (dynamic, static):
        if canary.exists():
            canary.unlink()
    env = dict(os.environ, AMBER_CANARY=str(dynamic), KERAS_BACKEND="numpy")
    payload = json.dumps({"path": str(CORPUS / case["file"]), "api": case["api"]})
    proc = subprocess.run([sys.executable, "-c", RUNNER, payload, json.dumps(target)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"the loading process died (rc {proc.returncode}): {proc.stderr[-2000:]}"
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert line, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(line[-1][len("RESULT "):])
    assert not dynamic.exists() and not static.exists(), "the payload ran: a canary file appeared"
    assert result["seconds"] < TIME_LIMIT_S, result
    assert result["max_rss_mb"] < MEMORY_LIMIT_MB, result
    if case["expected"] == "refuse":
        assert not result["ok"], f"{case['file']} was accepted"
        assert result["type"] not in ("RecursionError", "MemoryError", "SystemError"), result
        assert len(result["error"]) > 20, result
    else:
        assert result["ok"], result
        if case["api"] == "safetensors_load":
            assert abs(result["control"] - (sum(range(32)) / 32 + 0.5)) < 1e-4
        else:
            assert abs(result["control"] - 16.0) < 1e-4, result
