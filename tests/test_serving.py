"""Serving with Triton: the repository's configs parsed with Triton's own protobuf and checked against
the manifest, and a real tritonserver (nvidia-pytriton's binary, Python backend) answering concurrent
HTTP and gRPC requests exactly as the in-process runtime does (benchmarks/serve_check.py)."""
import json
from pathlib import Path

import pytest
from conftest import fake_engine_folder, run_script
from sanrt.runtime.manifest import Manifest
from sanrt.serving.repository import IMAGE_BACKENDS, NAMES, write_repository

TYPES = {"uint8": "TYPE_UINT8", "int64": "TYPE_INT64", "int32": "TYPE_INT32", "float32": "TYPE_FP32"}


def _parse(text):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(text, model_config_pb2.ModelConfig())


@pytest.fixture
def engine_folder(tiny_export, tmp_path):
    """An engine folder for config writing only (the plans are never loaded here)."""
    folder = fake_engine_folder(tiny_export, tmp_path / "engines")
    return folder


@pytest.mark.parametrize("backend", IMAGE_BACKENDS)
def test_configs_parse_and_match_the_manifest(tiny_export, engine_folder, tmp_path, backend):
    from tritonclient.grpc import model_config_pb2 as pb

    m = Manifest.load(tiny_export)
    configs = write_repository(engine_folder if backend == "tensorrt" else tiny_export, tmp_path / "repo", backend,
                               max_batch=4, instances=2)
    parsed = {name: _parse(text) for name, text in configs.items()}
    q, d = m.queries, m.embed_dim
    img = parsed[NAMES["image"]]
    assert img.max_batch_size == 4 and list(img.dynamic_batching.preferred_batch_size) == [1, 2, 4]
    assert img.instance_group[0].count == 2
    assert img.instance_group[0].kind == (pb.ModelInstanceGroup.KIND_GPU if backend == "tensorrt" else pb.ModelInstanceGroup.KIND_CPU)
    want = {"images": ("TYPE_UINT8", [3, -1, -1]), "sizes": ("TYPE_INT64", [2]),
            "mask_logits": ("TYPE_FP32", [q, -1, -1]), "mask_emb": ("TYPE_FP32", [q, d])}
    got = {t.name: (pb.DataType.Name(t.data_type), list(t.dims)) for t in [*img.input, *img.output]}
    assert got == want
    # every graph model's names are the export's (manifest "graphs"), batch dimension implicit or explicit
    for graph in ("image", "text", "head"):
        cfg = parsed[NAMES[graph]]
        assert {t.name for t in cfg.input} == set(m.data["graphs"][graph]["inputs"])
        assert {t.name for t in cfg.output} == set(m.data["graphs"][graph]["outputs"])
        if backend == "tensorrt":
            assert cfg.platform == "tensorrt_plan" and (tmp_path / "repo" / NAMES[graph] / "1" / "model.plan").is_file()
        else:
            assert cfg.backend == backend
            model_file = "model.py" if backend == "python" else "model.onnx"
            assert (tmp_path / "repo" / NAMES[graph] / "1" / model_file).is_file()
    head = parsed[NAMES["head"]]
    assert head.max_batch_size == 0 and [list(t.dims) for t in head.input] == [[-1, q, d], [-1, d]]
    pipe = parsed[NAMES["pipeline"]]
    assert pipe.backend == "python" and all(t.optional for t in pipe.input)
    assert {t.name: pb.DataType.Name(t.data_type) for t in pipe.output} == {"LABELS": "TYPE_UINT16",
                                                                          "CLASSES_PRESENT": "TYPE_STRING"}
    assert pipe.parameters["export_dir"].string_value == str(tiny_export.resolve())


def test_repository_errors_are_one_line(tiny_export, tmp_path):
    code, _, err = run_script("export/to_triton.py", "--export", tiny_export, "--out", tmp_path / "r",
                              "--image-backend", "tensorrt")
    assert code == 2 and err.startswith("error: --image-backend tensorrt needs a TensorRT engine folder")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("user file")
    code, _, err = run_script("export/to_triton.py", "--export", tiny_export, "--out", tmp_path / "full")
    assert code == 2 and "is not sanrt's to replace" in err and (tmp_path / "full" / "x").read_text() == "user file"
    code, _, err = run_script("export/to_triton.py", "--engine", tiny_export, "--out", tmp_path / "repo")
    assert code == 0, err
    code, _, err = run_script("export/to_triton.py", "--engine", tiny_export, "--out", tmp_path / "repo")
    assert code == 0, err  # its own earlier repository is replaced whole


def test_a_running_server_answers_as_the_runtime_does(small_export):
    """Starts tritonserver on 127.0.0.1 (free ports), 12 concurrent requests over HTTP and gRPC with 3
    vocabularies, bad requests (an image outside the range of this export made with --max-side
    1024 among them), statistics, stop: benchmarks/serve_check.py's JSON line."""
    from sanrt.runtime import BackendError
    from sanrt.serving.server import serving_env

    try:
        serving_env()
    except BackendError as e:
        pytest.skip(f"{e}")
    code, out, err = run_script("benchmarks/serve_check.py", "--export", small_export, "--requests", "12",
                                "--concurrency", "4", "--long-side", "160", timeout=600)
    res = json.loads(out.strip().splitlines()[-1])
    assert code == 0, err[-3000:]
    assert res["identical"] == res["requests"] == 12
    assert res["batched_requests"] > 0  # the image model saw batches > 1 (server statistics)
    assert res["bad_requests_answered"] == res["bad_requests"] == 7 and res["server_alive_after"]
    assert res["bad_requests_clean"]
    assert res["stop_s"] < 20


def test_the_launcher_stops_tritonserver_on_sigterm(small_export, tmp_path):
    """`python -m sanrt.serving.server REPO` under docker stop / systemd: SIGTERM stops the
    server's whole process group in bounded time, exit 0, and its temporary folder goes too."""
    import os
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    from sanrt.runtime import BackendError
    from sanrt.serving.repository import write_repository
    from sanrt.serving.server import serving_env

    try:
        env = serving_env()
    except BackendError as e:
        pytest.skip(f"{e}")
    write_repository(small_export, tmp_path / "repo", "python", site_dirs=[env["site_packages"]])
    before = set(Path(tempfile.gettempdir()).glob("sanrt-triton-*"))
    proc = subprocess.Popen([sys.executable, "-m", "sanrt.serving.server", str(tmp_path / "repo")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().startswith("serving "), proc.stderr.read()
        children = subprocess.run(["pgrep", "-f", f"model-repository={(tmp_path / 'repo').resolve()}"],
                                  capture_output=True, text=True).stdout.split()
        assert children  # tritonserver runs
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(40) == 0 and time.monotonic() - t < 40
        for pid in children:
            assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z", pid
        assert set(Path(tempfile.gettempdir()).glob("sanrt-triton-*")) <= before
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
