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
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec, so a child of a big pytest
    # process would report its parent's peak.
    result["max_rss_mb"] = int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:"))) / 1024
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


# The refusals that amber's Python layer makes (names, configs, archive members) hold whatever
# the byte-level readers are: run them in-process on the stand-in readers too.
PYTHON_LEVEL = {
    "ce_lambda_bytecode": "lambda",
    "ce_lambda_tfkeras2_legacy_h5": "lambda",
    "ce_builtins_exec_layer": "exec",
    "ce_enable_unsafe_keras": "lambda|enable_unsafe_deserialization",
    "ce_pickle_npz_weights": "model.weights.h5",
    "zip_traversal_dotdot": "unsafe name|path traversal",
    "zip_bomb_weights_1g": "decompression bomb|ratio|inflat",
    "zip_duplicate_config": "config.json' appears 2 times|duplicate entry name",
    "zip_missing_config": "config.json' is missing",
    "cfg_deep_nesting": "nesting depth",
    "cfg_units_string": "'units' of Dense must be a positive integer",
    "cfg_inbound_ghost_layer": "ghost",
    "cfg_weights_shape_mismatch": "shape",
    "h5_huge_shape": "shape",
    "ok_valid_model": None,
    "ok_extra_entries": None,
    "ok_valid_legacy_h5": None,
    "ok_valid_weights": None,
}


def _python_level_cases():
    return [pytest.param(c, id=c["id"]) for c in _manifest()["cases"] if c["id"] in PYTHON_LEVEL]


@pytest.mark.parametrize("case", _python_level_cases())
def test_python_level_rules_on_corpus(case, tmp_path, monkeypatch, native_io):
    import re

    import numpy as np

    from amber import saving
    from amber.saving import keras_file

    dynamic, static = _canaries(case, tmp_path)
    monkeypatch.setenv("AMBER_CANARY", str(dynamic))
    path = str(CORPUS / case["file"])

    def load():
        if case["api"] == "load_model":
            return saving.load_model(path)
        model = keras_file.model_from_config(_manifest()["target_models"][case["target_model"]]["config"],
                                             compile=False)
        model.load_weights(path)
        return model

    expected = PYTHON_LEVEL[case["id"]]
    if expected is None:
        model = load()
        out = model.predict(np.ones((1, 32), dtype="float32"), verbose=0)
        assert abs(float(np.asarray(out).reshape(-1)[0]) - 16.0) < 1e-4
    else:
        with pytest.raises(ValueError) as info:
            load()
        assert re.search(expected, str(info.value)), str(info.value)
    assert not dynamic.exists() and not static.exists()
