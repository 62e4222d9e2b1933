"""Serve an export with Triton and check every answer against the in-process runtime.

    python benchmarks/serve_check.py --export out/onnx/vit_b_16 [--requests 24] [--concurrency 8]

Writes a Python-backend model repository (export/to_triton.py --image-backend python) into a temporary
folder, starts the bundled tritonserver (127.0.0.1, free ports; `make serve-env`), sends concurrent
requests over HTTP and gRPC (3 vocabularies interleaved, encoded images and raw pixels), compares
every label map with sanrt's Segmenter in this process, sends bad requests (corrupt image bytes, an
empty vocabulary, more classes than the export takes, an image outside the export's range when it has
one), checks the server still answers, reads dynamic batching from the server's statistics, and
stops the server. Last stdout line, one JSON object:
{"requests", "identical", "batched_requests", "bad_requests_answered", "server_alive_after", "p50_ms",
 "p99_ms", "stop_s"}; exit 0 only when every answer is identical and every bad request got an error.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from sanrt.benchmarks.lib.photos import sample_photos
from sanrt.runtime import cli
from sanrt.serving.client import request_inputs
from sanrt.evaluation.compare import label_agreement

# (vocabulary, expansion): the last one as SAN's demo sends it, distractors folded into "other"
VOCABS = [(("classes", ["person", "cat", "grass", "sky", "building"]), None), (("classes", ["cup", "table", "floor"]), None),
          (("dataset", "voc20"), None), (("classes", ["cat", "sofa"]), "coco-all")]


def raw_inputs(mod, name, array, dtype):
    t = mod.InferInput(name, list(array.shape), dtype)
    t.set_data_from_numpy(array)
    return t


def check(engine: Path, requests: int = 24, concurrency: int = 8, instances: int = 4, long_side: int | None = None,
          log=print) -> dict:
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    from sanrt.runtime import Segmenter, dataset_vocabulary
    from sanrt.serving.repository import write_repository
    from sanrt.serving.server import TritonServer, serving_env

    env = serving_env()
    seg = Segmenter(engine, backend="onnxruntime", device="cpu")
    imgs = sample_photos(long_side)
    names = {i: (v[1] if v[0] == "classes" else dataset_vocabulary(v[1])) for i, (v, _) in enumerate(VOCABS)}
    vocabs = {i: seg.vocabulary(n, expand=VOCABS[i][1]) for i, n in names.items()}
    # the server makes class weights with text.onnx and batches images; this process may use text_after
    # (equal within 2e-6): labels must agree on every pixel that is not a near-tie of these scores
    expected = {(p, v): seg.segment([imgs[p]], vocabs[v], return_scores=True)[0] for p in imgs for v in vocabs}

    def same(labels, exp) -> bool:
        return label_agreement(labels.astype(np.int64), exp.labels, exp.scores).agreement == 1.0
    # a photo per group of `concurrency` requests: requests in flight together share a padded size, which
    # is what the image model's dynamic batcher may batch; vocabularies and protocols interleave
    plan = [(list(imgs)[(k // concurrency) % len(imgs)], k % len(VOCABS), ("http", "grpc")[k % 2], k % 3 != 2)
            for k in range(requests)]
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        write_repository(engine, repo, "python", instances=1, site_dirs=[env["site_packages"]], queue_delay_us=20000,
                         cache_dir=str(Path(tmp) / "vocab"), pipeline_instances=instances)
        log(f"starting tritonserver on {repo}")
        server = TritonServer(repo).start()
        try:
            mods = {"http": httpclient, "grpc": grpcclient}
            urls = {"http": server.http_url, "grpc": server.grpc_url}
            local, opened = threading.local(), []

            def client(proto):
                """One client per thread and protocol (tritonclient's HTTP client is not thread-safe)."""
                if not hasattr(local, proto):
                    setattr(local, proto, mods[proto].InferenceServerClient(urls[proto]))
                    opened.append(getattr(local, proto))
                return getattr(local, proto)

            for v in range(len(VOCABS)):  # one warm request per vocabulary: text side, caches
                p = list(imgs)[0]
                client("http").infer("san", request_inputs(httpclient, imgs[p], VOCABS[v][0], True, VOCABS[v][1]))

            def one(item):
                p, v, proto, encoded = item
                t = time.perf_counter()
                r = client(proto).infer("san", request_inputs(mods[proto], imgs[p], VOCABS[v][0], encoded, VOCABS[v][1]))
                return item, r.as_numpy("LABELS"), time.perf_counter() - t

            log(f"{requests} requests, {concurrency} at a time, HTTP and gRPC, {len(VOCABS)} vocabularies")
            with ThreadPoolExecutor(concurrency) as pool:
                answers = list(pool.map(one, plan))
            identical = sum(same(lab, expected[(p, v)]) for (p, v, _, _), lab, _ in answers)
            latencies = sorted(t for _, _, t in answers)
            stats = client("http").get_inference_statistics("san_image")["model_stats"][0]
            batched = sum(int(b["batch_size"]) * int(b["compute_infer"]["count"])
                          for b in stats.get("batch_stats", []) if int(b["batch_size"]) > 1)

            log("bad requests")
            h = httpclient
            rng = np.random.default_rng(0)
            bad = {"corrupt image bytes": [raw_inputs(h, "IMAGE", np.array([b"\x89PNG\r\n not really"], dtype=np.object_), "BYTES"),
                                           raw_inputs(h, "CLASSES", np.array([b"cat"], dtype=np.object_), "BYTES")],
                   "empty vocabulary": [raw_inputs(h, "IMAGE_RGB", imgs["coffee"], "UINT8"),
                                        raw_inputs(h, "CLASSES", np.array([b""], dtype=np.object_), "BYTES")],
                   "names CLIP cannot tell apart": [raw_inputs(h, "IMAGE_RGB", imgs["coffee"], "UINT8"),
                                                    raw_inputs(h, "CLASSES", np.array([b"cat.", b"cat ."], dtype=np.object_), "BYTES")],
                   "a name with nothing CLIP reads": [raw_inputs(h, "IMAGE_RGB", imgs["coffee"], "UINT8"),
                                                      raw_inputs(h, "CLASSES", np.array([b"cat", "\u200b".encode()], dtype=np.object_), "BYTES")],
                   "names that are not UTF-8": [raw_inputs(h, "IMAGE_RGB", imgs["coffee"], "UINT8"),
                                                raw_inputs(h, "CLASSES", np.array([b"cat", b"\xff\xfe"], dtype=np.object_), "BYTES")],
                   "more classes than the export takes": [
                       raw_inputs(h, "IMAGE_RGB", imgs["coffee"], "UINT8"),
                       raw_inputs(h, "CLASSES", np.array([f"c{i}".encode() for i in range(seg.manifest.ranges.classes[1] + 1)],
                                                         dtype=np.object_), "BYTES")]}
            r = seg.manifest.ranges
            if r.width[1] < 2560:  # an image outside the export's range exists
                wide = rng.integers(0, 256, (50, 400, 3), dtype=np.uint8)  # 8:1 -> a 640x2560 input
                bad["image outside the export's range"] = [raw_inputs(h, "IMAGE_RGB", wide, "UINT8"),
                                                           raw_inputs(h, "CLASSES", np.array([b"cat"], dtype=np.object_), "BYTES")]
            answered = {}
            for what, inputs in bad.items():
                try:
                    client("http").infer("san", inputs)
                    answered[what] = "no error"
                except Exception as e:  # noqa: BLE001 - tritonclient raises InferenceServerException
                    answered[what] = str(e).splitlines()[0][:200]
            again = one(plan[0])[1]
            alive = server.alive() and same(again, expected[plan[0][:2]])
            for c in opened:
                c.close()
        finally:
            stop_s = server.stop()
    return {"requests": requests, "identical": int(identical), "batched_requests": batched,
            "bad_requests": len(bad), "bad_requests_answered": sum(v != "no error" for v in answered.values()),
            "bad_request_errors": answered, "server_alive_after": bool(alive),
            # one sanrt line each: no traceback or server file path reaches the client
            "bad_requests_clean": all(e.count("sanrt:") == 1 and "Traceback" not in e and ".py" not in e
                                      for e in answered.values()),
            "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
            "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
            "stop_s": round(stop_s, 2)}


def main(argv=None) -> int:
    return cli.run(_main, argv)


def _main(argv) -> int:
    ap = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_export_argument(ap, required=True, help="an sanrt export folder")
    ap.add_argument("--requests", type=int, default=24)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--instances", type=int, default=4, help="instances of the san pipeline model")
    ap.add_argument("--long-side", type=int, help="scale the photos down to this long side (quicker checks)")
    args = ap.parse_args(argv)
    res = check(args.export, args.requests, args.concurrency, args.instances, args.long_side,
                log=lambda s: print(f"[{time.strftime('%H:%M:%S')}] {s}", file=sys.stderr, flush=True))
    for what, err in res.pop("bad_request_errors").items():
        print(f"bad request, {what}: {err}", file=sys.stderr)
    print(json.dumps(res))
    ok = res["identical"] == res["requests"] and res["bad_requests_answered"] == res["bad_requests"] and res["server_alive_after"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
