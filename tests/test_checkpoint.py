"""Official checkpoint import: released key manifests, the tiny official checkpoint, clear refusals."""
import pickle

import pytest
import torch
from sanrt.model import SAN, CheckpointError, load_checkpoint, map_official_state_dict, preset
from sanrt.model.checkpoint import read_state_dict
from sanrt.model.config import from_fixture_config


def _manifest_state_dict(path):
    """Meta tensors with exactly the keys and shapes of a released checkpoint's manifest."""
    sd = {}
    for line in path.read_text().splitlines():
        key, shape, dtype = line.split("\t")
        dims = [int(d) for d in shape.strip("[]").split(",") if d]
        sd[key] = torch.empty(dims, dtype=getattr(torch, dtype), device="meta")
    return sd


@pytest.mark.parametrize("name,manifest", [("vit_b_16", "san_vit_b_16.keys.tsv"),
                                           ("vit_l_14", "san_vit_large_14.keys.tsv")])
def test_released_manifest_loads_with_nothing_missing_or_unexpected(reference_dir, name, manifest):
    official = _manifest_state_dict(reference_dir / manifest)
    with torch.device("meta"):
        model = SAN(preset(name))
    mapped = map_official_state_dict(official, model)
    assert set(mapped) == set(model.state_dict())
    dropped = set(official) - {k for k in official if not k.startswith("criterion.") and k != "ov_classifier.attn_mask"}
    assert all(k.startswith("criterion.") or k == "ov_classifier.attn_mask" for k in dropped)
    result = model.load_state_dict(mapped, strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys
    trainable = sum(v.numel() for k, v in mapped.items()
                    if not k.startswith("clip.") or k == "clip.visual.positional_embedding")
    # SAN_NOTES: trainable parameters (side adapter, fusion, decoder, bg row, and CLIP's visual
    # positional embedding, which SAN fine-tunes: CLIP_FROZEN_EXCLUDE = ["positional_embedding"])
    assert trainable == {"vit_b_16": 8_370_866, "vit_l_14": 9_321_650}[name]


@pytest.fixture(scope="module")
def tiny_state(tiny_dev):
    return read_state_dict(tiny_dev / "checkpoint.pth")


@pytest.fixture(scope="module")
def tiny_model(tiny_dev):
    return SAN(from_fixture_config(tiny_dev / "tiny_config.json"))


def test_tiny_official_checkpoint_loads(tiny_dev, tiny_model):
    load_checkpoint(tiny_model, tiny_dev / "checkpoint.pth")
    official = read_state_dict(tiny_dev / "checkpoint.pth")
    torch.testing.assert_close(tiny_model.clip.visual.transformer.resblocks[10].attn.in_proj_weight,
                               official["clip_rec_head.resblocks.1.attn.in_proj_weight"], rtol=0, atol=0)
    torch.testing.assert_close(tiny_model.bg_embed, official["ov_classifier.bg_embed"], rtol=0, atol=0)


def test_bare_state_dict_is_accepted(tmp_path, tiny_state, tiny_model):
    torch.save(tiny_state, tmp_path / "bare.pth")
    load_checkpoint(tiny_model, tmp_path / "bare.pth")


def test_missing_unexpected_and_wrong_shape_are_named(tiny_state, tiny_model):
    sd = dict(tiny_state)
    del sd["side_adapter_network.query_embed"]
    sd["side_adapter_network.extra.weight"] = torch.zeros(3)
    sd["ov_classifier.bg_embed"] = torch.zeros(1, 7)
    with pytest.raises(CheckpointError) as e:
        map_official_state_dict(sd, tiny_model)
    msg = str(e.value)
    assert "missing: side_adapter.query_embed" in msg
    assert "unexpected: side_adapter_network.extra.weight" in msg
    assert "wrong shape: ov_classifier.bg_embed [1, 7]" in msg
    assert "\n" not in msg


def test_checkpoint_for_other_config_is_refused(tiny_state):
    with torch.device("meta"):
        big = SAN(preset("vit_b_16"))
    with pytest.raises(CheckpointError, match="wrong shape"):
        map_official_state_dict(tiny_state, big)


def test_missing_and_corrupt_files_are_refused(tmp_path, tiny_model):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tiny_model, tmp_path / "nope.pth")
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(tiny_model, bad)


class _Evil:
    def __reduce__(self):
        return (print, ("arbitrary code ran",))


def test_arbitrary_pickle_is_refused(tmp_path, tiny_model, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model": _Evil()}, f)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(tiny_model, path)
    assert "arbitrary code ran" not in capsys.readouterr().out


def test_non_checkpoint_object_is_refused(tmp_path, tiny_model):
    torch.save({"model": [1, 2, 3]}, tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="is not a SAN checkpoint"):
        load_checkpoint(tiny_model, tmp_path / "list.pth")
