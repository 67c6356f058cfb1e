"""Building a joint model from a local SD-layout folder, saving, loading, and the CLI around it."""

import json

import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel
from PIL import Image

from jointportrait import JointPortraitPipeline
from jointportrait.cli.main import main
from jointportrait.loading import tiny_base_components


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    """A tiny Stable Diffusion 1.5-layout folder as a user would have it (unet/, vae/, scheduler/, image_encoder/)."""
    root = tmp_path_factory.mktemp("sd15")
    base = tiny_base_components(seed=3, with_image_encoder=True)
    base.unet.save_pretrained(root / "unet")
    base.vae.save_pretrained(root / "vae")
    base.scheduler.save_pretrained(root / "scheduler")
    base.image_encoder.save_pretrained(root / "image_encoder")
    (root / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    return root, base


def test_create_from_sd_folder_and_load_back(sd_folder, tmp_path, capsys):
    root, base = sd_folder
    out = tmp_path / "joint"
    assert main(["create", "--base-model", str(root), "--out", str(out)]) == 0
    assert "8 input channels" in capsys.readouterr().out
    # the saved denoiser is a plain diffusers UNet
    unet = UNet2DConditionModel.from_pretrained(out, subfolder="unet")
    assert (unet.config.in_channels, unet.config.out_channels) == (8, 8)
    assert torch.equal(unet.conv_in.weight[:, :4], base.unet.conv_in.weight)
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").exists()
    pipe = JointPortraitPipeline.from_pretrained(out)
    assert pipe.image_encoder is not None and pipe.reference_unet.config.in_channels == 4
    ref = np.full((64, 64, 3), 0.5, np.float32)
    result = pipe(ref, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert result.depths.shape == (1, 64, 64)


def test_image_encoder_embedding_conditions_the_model(sd_folder, tmp_path):
    root, _ = sd_folder
    out = tmp_path / "joint"
    main(["create", "--base-model", str(root), "--out", str(out)])
    pipe = JointPortraitPipeline.from_pretrained(out)
    pipe.set_progress_bar_config(disable=True)
    kw = dict(num_inference_steps=2, output_type="latent", generator=torch.Generator().manual_seed(0))
    with_enc = pipe(np.full((64, 64, 3), 0.3, np.float32), **kw).images
    pipe_no = JointPortraitPipeline(**{**pipe.components, "image_encoder": None})
    pipe_no.set_progress_bar_config(disable=True)
    kw["generator"] = torch.Generator().manual_seed(0)
    without = pipe_no(np.full((64, 64, 3), 0.3, np.float32), **kw).images
    assert (with_enc - without).abs().max() > 1e-6


@pytest.fixture(scope="module")
def sd_without_encoder(sd_folder, tmp_path_factory):
    """The SD folder without image_encoder/ (as SD 1.5 ships), and a tiny CLIP vision model saved apart."""
    import shutil

    root, base = sd_folder
    bare = tmp_path_factory.mktemp("sd15_bare")
    for name in ("unet", "vae", "scheduler", "model_index.json"):
        (shutil.copytree if (root / name).is_dir() else shutil.copy)(root / name, bare / name)
    clip = tmp_path_factory.mktemp("clip")
    base.image_encoder.save_pretrained(clip)
    return bare, clip


def test_create_with_an_image_encoder_path(sd_without_encoder, tmp_path, caplog):
    bare, clip = sd_without_encoder
    out = tmp_path / "joint"
    assert main(["create", "--base-model", str(bare), "--image-encoder", str(clip), "--out", str(out)]) == 0
    assert json.loads((out / "model_index.json").read_text())["reference_embedding"] == "clip"
    pipe = JointPortraitPipeline.from_pretrained(out)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.image_encoder is not None
    from jointportrait.models.image_condition import reference_conditioning

    refs = torch.stack([torch.full((3, 64, 64), -0.4), torch.full((3, 64, 64), 0.6)])
    emb = reference_conditioning(pipe.image_encoder, refs, 32, torch.float32)
    assert (emb[0] - emb[1]).abs().max() > 1e-4  # different references, different embeddings
    kw = dict(num_inference_steps=2, output_type="latent")
    a = pipe(np.full((64, 64, 3), 0.3, np.float32), generator=torch.Generator().manual_seed(0), **kw).images
    b = pipe(np.full((64, 64, 3), 0.8, np.float32), generator=torch.Generator().manual_seed(0), **kw).images
    assert (a - b).abs().max() > 1e-5  # and different samples


def test_without_an_image_encoder_it_says_so(sd_without_encoder, tmp_path, caplog):
    bare, _ = sd_without_encoder
    with caplog.at_level("WARNING"):
        assert main(["create", "--base-model", str(bare), "--out", str(tmp_path / "a")]) == 0
    assert sum("no CLIP image encoder" in r.message for r in caplog.records) == 1
    assert json.loads((tmp_path / "a" / "model_index.json").read_text())["reference_embedding"] == "null"
    caplog.clear()
    with caplog.at_level("WARNING"):  # the null embedding chosen explicitly: no warning
        assert main(["create", "--base-model", str(bare), "--image-encoder", "none", "--out", str(tmp_path / "b")]) == 0
    assert not any("image encoder" in r.message for r in caplog.records)
    assert not (tmp_path / "b" / "image_encoder").exists()


def test_a_model_that_lost_its_image_encoder_is_refused(sd_folder, tmp_path):
    import shutil

    root, _ = sd_folder
    out = tmp_path / "joint"
    main(["create", "--base-model", str(root), "--out", str(out)])
    shutil.rmtree(out / "image_encoder")
    index = json.loads((out / "model_index.json").read_text())
    index["image_encoder"] = [None, None]
    (out / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="reference_embedding='clip'"):
        JointPortraitPipeline.from_pretrained(out)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "--base-model", "/nonexistent/sd", "--out", "{tmp}/o"], "expected a Stable Diffusion 1.5 folder"),
        (["create", "--base-model", "{tmp}", "--out", "{tmp}/o"], "missing unet, vae, scheduler"),
        (["create", "--base-model", "{tmp}/x.txt", "--out", "{tmp}/o"], "single-file"),
        (["generate", "--model", "/nonexistent/m", "--reference", "{tmp}/x.txt", "--out", "{tmp}/g"], "no such"),
        (["create", "--tiny", "--image-encoder", "{tmp}", "--out", "{tmp}/o"], "--image-encoder goes with"),
    ],
)
def test_bad_paths_are_one_line_errors(tmp_path, capsys, args, message):
    (tmp_path / "x.txt").write_text("not a model")
    code = main([a.format(tmp=tmp_path) for a in args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "\n" not in err and message in err


def test_bad_single_file_checkpoint_is_one_line_error(tmp_path, capsys):
    from safetensors.torch import save_file

    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x00" * 64)  # not even a safetensors header
    assert main(["create", "--base-model", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "model.safetensors: corrupt safetensors file" in err and "\n" not in err
    other = tmp_path / "other.safetensors"  # a valid safetensors file that is no SD checkpoint
    save_file({"x": torch.zeros(2)}, str(other))
    assert main(["create", "--base-model", str(other), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a loadable SD 1.x single-file checkpoint" in err and "\n" not in err
    pickled = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}}, pickled)
    assert main(["create", "--base-model", str(pickled), "--out", str(tmp_path / "o")]) == 2
    assert "pickled checkpoints are not loaded" in capsys.readouterr().err


def test_create_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("user data")
    assert main(["create", "--tiny", "--out", str(tmp_path)]) == 2
    assert (tmp_path / "keep.txt").read_text() == "user data"


def test_generate_command_end_to_end(tiny_model_dir, tmp_path, capsys):
    refs = tmp_path / "refs"
    refs.mkdir()
    Image.fromarray(np.full((40, 48, 3), 120, np.uint8)).save(refs / "a.png")
    Image.fromarray(np.full((64, 64, 4), 200, np.uint8), "RGBA").save(refs / "b.png")
    (refs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "out"
    args = ["generate", "--model", str(tiny_model_dir), "--reference", str(refs), "--out", str(out),
            "--steps", "2", "--size", "64", "--num-samples", "2"]
    assert main(args) == 1  # one bad file: reported, the others written
    captured = capsys.readouterr()
    assert "broken.png" in captured.err and "wrote 2 of 3" in captured.out
    depth = np.load(out / "a_01_depth.npy")
    assert depth.shape == (64, 64) and depth.dtype == np.float32
    assert Image.open(out / "a_01_depth.png").mode.startswith("I")
    before = (out / "a_00.png").read_bytes()
    assert main(args[:-4] + ["--steps", "3", "--size", "64"] + ["--reference", str(refs / "a.png")]) == 2
    assert (out / "a_00.png").read_bytes() == before  # never overwritten without --overwrite
