"""The text side: what a vocabulary costs, new, sharing names with known ones, and known.

    python benchmarks/text_side.py                       # out/onnx/vit_b_16, ONNX Runtime
    python benchmarks/text_side.py --export out/onnx/tiny --backend openvino

Each scenario starts from an empty class-weight cache in a temporary folder (never the user's):
1. ADE20K-150, nothing known: all 150 names x 14 templates through the text graph;
2. ADE20K-150 after COCO-Stuff-171 and PASCAL Context-59 were used (names in common come from the
   per-name cache);
3. ADE20K-150 with 10 of its names replaced by new ones, after ADE20K-150 was used;
4. ADE20K-150 again (the whole vocabulary's entry);
5. three new names with COCO-all expansion (171 distractors), nothing known, and after another
   three-name vocabulary with the same expansion (the distractors from the per-name cache), beside
   the three names alone.
Every class weight built from cached names is compared with one built with no cache at all.
The report also counts the tokens the text_after graph runs (each template's words before the class
name are the same for every class, and causal attention makes their states the same too, so they run
once) against the plain text graph. Writes text_side.{json,md} under benchmarks/results/<machine>/.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sanrt.runtime import cli, logs
from sanrt.evaluation.compare import cosine_min
from sanrt.runtime.machine import cpu_flags, cpu_model, machine_slug
from sanrt.runtime.segmenter import Segmenter
from sanrt.runtime.datasets import dataset_vocabulary

ROOT = Path(__file__).resolve().parents[1]
THREE = (["red kayak", "harbour crane", "seagull"], ["espresso cup", "laptop bag", "desk lamp"])
NEW_NAMES = ["espresso machine", "drone", "solar panel", "skateboard ramp", "server rack", "wind turbine", "kayak",
             "forklift", "greenhouse", "traffic cone"]


def token_counts(seg: Segmenter, names: list[str]) -> dict:
    """Tokens of these names' texts (each up to its end-of-text token), and with each template's
    shared prefix run once (what the text_after graph runs)."""
    now = shared = 0
    for t in seg.manifest.templates:
        ids = seg.text.tokenizer([t.format(n) for n in names], seg.manifest.ranges.tokens)
        ends = ids.argmax(axis=1) + 1
        prefix = 0
        while prefix < ends.min() - 1 and (ids[:, prefix] == ids[0, prefix]).all():
            prefix += 1
        now += int(ends.sum())
        shared += int((ends - prefix).sum()) + prefix
    return {"tokens_now": now, "tokens_prefix_shared": shared}


def main(argv=None) -> int:
    return cli.run(_main, argv)


def _main(argv) -> int:
    ap = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_export_argument(ap, default=ROOT / "out" / "onnx" / "vit_b_16")
    ap.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "openvino"])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--results", type=Path, help="report folder (default benchmarks/results/<machine>)")
    args = ap.parse_args(argv)
    logs.setup(False)
    results = args.results or ROOT / "benchmarks" / "results" / machine_slug()
    ade = dataset_vocabulary("ade150")
    edited = ade[:-len(NEW_NAMES)] + NEW_NAMES
    scenarios = [("ADE20K-150, nothing known", [], ade),
                 ("ADE20K-150 after COCO-Stuff-171 and PASCAL Context-59", [dataset_vocabulary("coco_stuff171"),
                                                                            dataset_vocabulary("pc59")], ade),
                 (f"ADE20K-150 with {len(NEW_NAMES)} names replaced, after ADE20K-150", [ade], edited),
                 ("ADE20K-150 again", [ade], ade),
                 ("3 new names", [], THREE[1]),
                 ("3 new names + coco-all, nothing known", [], THREE[1], "coco-all"),
                 ("3 new names + coco-all, after 3 others + coco-all", [THREE[0]], THREE[1], "coco-all")]
    rows = []
    for label, before, names, *expand in scenarios:
        expand = expand[0] if expand else None
        with tempfile.TemporaryDirectory() as cache:
            seg = Segmenter(args.export, backend=args.backend, threads=args.threads, cache_dir=Path(cache))
            for v in before:
                seg.vocabulary(v, expand=expand)
            if label.endswith("again"):
                seg.vocabulary(names)
            vocab = seg.vocabulary(names, expand=expand)
            fresh = seg.vocabulary(names, use_cache=False, expand=expand)  # every text through the text graph
            row = {"scenario": label, "classes": len(vocab.classes), "names_encoded": vocab.names_encoded,
                   "whole_vocabulary_cached": vocab.cached, "seconds": vocab.text_s, "no_cache_seconds": fresh.text_s,
                   "max_abs_diff": float(np.abs(vocab.class_weights - fresh.class_weights).max()),
                   "cosine_min": cosine_min(vocab.class_weights, fresh.class_weights)}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    counts = token_counts(seg, ade)
    rep = {"machine": cpu_model(), "cpu_flags": cpu_flags(), "cores": os.cpu_count(), "threads": args.threads,
           "backend": args.backend, "export": str(args.export), "weights": seg.manifest.weights,
           "templates": len(seg.manifest.templates), "rows": rows, "ade150_tokens": counts,
           "text_after": seg.text.text_after is not None,
           "date": time.strftime("%Y-%m-%d %H:%M")}
    lines = [f"# Text side: what a vocabulary costs ({args.backend}, text graph FP32)", "",
             f"- machine: {rep['machine']}; {rep['cores']} cores; flags {', '.join(rep['cpu_flags'])}; {args.threads} threads",
             f"- export: {args.export.name} ({rep['weights']}); {rep['templates']} templates per class; date {rep['date']}",
             "- each scenario from an empty cache in a temporary folder; identity against the same vocabulary "
             "built with no cache", "",
             "| scenario | classes | names through the text graph | seconds | no cache, seconds | max abs diff | cosine min |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['scenario']} | {r['classes']} | {r['names_encoded']}"
                     f"{' (whole vocabulary cached)' if r['whole_vocabulary_cached'] else ''} | {r['seconds']:.2f} "
                     f"| {r['no_cache_seconds']:.2f} | {r['max_abs_diff']:.1e} | {r['cosine_min']:.7f} |")
    c = counts
    lines += ["", f"ADE20K-150's {len(ade) * rep['templates']} texts hold {c['tokens_now']} tokens; with each template's "
              f"shared prefix run once (the text_after graph: exact under causal attention) {c['tokens_prefix_shared']} "
              f"({c['tokens_now'] / c['tokens_prefix_shared']:.2f}x fewer). This export "
              f"{'has' if rep['text_after'] else 'lacks'} text_after (exports made before it run every token)."]
    results.mkdir(parents=True, exist_ok=True)
    (results / "text_side.json").write_text(json.dumps(rep, indent=1))
    (results / "text_side.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {results}/text_side.{{json,md}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
