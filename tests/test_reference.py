"""benchmarks/reference_parity.py: passes on the official fixtures, fails when they disagree, and
handles fixture folders of other widths, vocabularies and image sizes."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from fixture_factory import write_fixture
from sanrt.model.reference import check_fixture

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_parity.py"


def _run(folder):
    p = subprocess.run([sys.executable, str(SCRIPT), str(folder)], capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def test_official_fixture_passes_within_bounds(tiny_dev):
    code, out, err = _run(tiny_dev)
    assert code == 0, out + err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["images"] == 2 and summary["ok"]
    assert summary["worst_rel_err"] <= 1e-4
    assert summary["pixel_label_agreement"] >= 0.9999
    # every recorded stage was compared, for each image (official mask_preds / mask_logits under
    # sanrt's names mask_logits / class_logits)
    for stage in ("clip_feat_9", "clip_cls_9", "attn_bias_clip", "mask_emb", "mask_logits", "class_logits", "sem_seg",
                  "token_ids"):
        assert out.count(f" {stage} ") == 2, stage


def test_a_wrong_stage_fails_and_is_named(tiny_dev, tmp_path):
    bad = tmp_path / "tampered"
    shutil.copytree(tiny_dev, bad)
    ref = dict(np.load(bad / "chelsea.npz"))
    ref["mask_emb"] = ref["mask_emb"] * (1 + 1e-3)
    np.savez(bad / "chelsea.npz", **ref)
    code, out, _ = _run(bad)
    assert code == 1
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["worst_rel_output"] == "chelsea/mask_emb" and not summary["ok"]


def test_not_a_fixture_folder_is_one_line_error(tmp_path):
    code, out, err = _run(tmp_path)
    assert code == 2 and "no tiny_config.json" in err and "Traceback" not in err


def test_other_widths_vocabulary_and_sizes(tiny_dev, tmp_path):
    def smaller(c):
        c["open_clip_model_cfg"].update(embed_dim=32)  # = text width, as SAN sizes bg_embed by it
        c["open_clip_model_cfg"]["vision_cfg"].update(width=64, head_width=8)
        c["open_clip_model_cfg"]["text_cfg"].update(width=32, heads=4)
        c["clip_vision_heads"] = 8
        c["side_adapter"]["timm_vit"].update(embed_dim=48, num_heads=4)
        c["side_adapter"]["ATTN_BIAS"].update(NUM_HEADS=8, EMBED_CHANNELS=24, MLP_CHANNELS=24)
        c["side_adapter"]["NUM_QUERIES"] = 20
        c["input"]["min_size_test"] = 320

    rng = np.random.default_rng(0)
    images = {"wide": rng.integers(0, 255, (90, 170, 3), dtype=np.uint8),
              "tall": rng.integers(0, 255, (131, 77, 3), dtype=np.uint8)}
    folder = tmp_path / "other"
    write_fixture(folder, tiny_dev / "tiny_config.json", images, ["road", "sky", "a red car", "tree", "person"], smaller)
    report = check_fixture(folder)
    assert report.ok and report.info["images"] == 2
    assert {r.output for r in report.rows} >= {"clip_feat_0", "mask_emb", "sem_seg", "attn_bias_side", "labels"}
