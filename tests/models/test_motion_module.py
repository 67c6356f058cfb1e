"""Motion modules (paper Sec. 4, Fig. 2; supplementary 7.1): the AnimateDiff layout, per-frame norm,
motion frames as keys/values, and weights that load strictly from a MotionAdapter folder or an
original AnimateDiff checkpoint."""

from __future__ import annotations

import json
import math

import pytest
import torch
from diffusers import MotionAdapter
from safetensors.torch import load_file, save_file

from jointportrait.errors import InputError, JointPortraitError
from jointportrait.loading import tiny_base_components
from jointportrait.models.motion import (
    MotionAdapterMismatchError,
    build_motion_adapter,
    check_adapter_fits,
    motion_modules,
    temporal_attention,
    zero_motion_output,
)
from jointportrait.models.motion_checkpoint import MotionWeightsError, load_motion_adapter

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def unet():
    return tiny_base_components().unet


@pytest.fixture()
def adapter(unet):
    return build_motion_adapter(unet, seed=3, zero_output=False).double().eval()


def _module(adapter):
    return dict(motion_modules(adapter))["down_blocks.0.motion_modules.0"]  # 32 channels


def test_one_module_per_spatial_layer_with_the_unets_widths(unet, adapter):
    names = [n for n, _ in motion_modules(adapter)]
    # tiny UNet: 2 down blocks x 1 layer, 1 mid attention, 2 up blocks x 2 layers (diffusers' UNetMotionModel)
    assert names == ["down_blocks.0.motion_modules.0", "down_blocks.1.motion_modules.0", "mid_block.motion_modules.0",
                     "up_blocks.0.motion_modules.0", "up_blocks.0.motion_modules.1", "up_blocks.1.motion_modules.0",
                     "up_blocks.1.motion_modules.1"]
    check_adapter_fits(adapter, unet)
    sd15_like = MotionAdapter(block_out_channels=(64, 128), motion_layers_per_block=1, motion_norm_num_groups=8)
    with pytest.raises(MotionAdapterMismatchError, match="channels"):
        check_adapter_fits(sd15_like, unet)
    two_layers = MotionAdapter(block_out_channels=(32, 64), motion_layers_per_block=2, motion_norm_num_groups=8)
    with pytest.raises(MotionAdapterMismatchError, match="temporal modules"):
        check_adapter_fits(two_layers, unet)


def test_one_frame_without_motion_frames_is_diffusers_forward(adapter):
    # with one frame, diffusers' pooled GroupNorm is the per-frame norm: the two forwards must agree exactly
    module = _module(adapter)
    x = torch.randn(3, 32, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        ours = temporal_attention(module, x, num_frames=1)
        theirs = module(x, num_frames=1)
    assert torch.allclose(ours, theirs, atol=1e-12)
    assert not torch.allclose(ours, x)  # the module does something


def _manual_temporal(module, x, num_frames, motion):
    """The temporal module written out per pixel: per-frame GroupNorm, proj_in, two pre-norm attentions whose
    keys/values run over [motion, frames] with sinusoidal positions 0..n+F-1, feed-forward, proj_out."""
    block = module.transformer_blocks[0]
    c = x.shape[1]
    groups = module.norm.num_groups

    def norm(frames):  # (T, C, H, W) each frame alone
        g = frames.view(frames.shape[0], groups, -1)
        g = (g - g.mean(-1, keepdim=True)) / torch.sqrt(g.var(-1, unbiased=False, keepdim=True) + module.norm.eps)
        return g.view_as(frames) * module.norm.weight[:, None, None] + module.norm.bias[:, None, None]

    xs, ms = module.proj_in(norm(x).permute(2, 3, 0, 1)), module.proj_in(norm(motion).permute(2, 3, 0, 1))
    d = xs.shape[-1]
    position = torch.arange(64, dtype=torch.float64)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * (-math.log(10000.0) / d))
    pe = torch.zeros(64, d, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(position * div), torch.cos(position * div)
    n = motion.shape[0]

    def attend(attn, ln, h):
        seq = ln(torch.cat([ms, h], dim=2)) + pe[: n + num_frames]  # (H, W, n + F, D)
        q, k, v = attn.to_q(seq[:, :, n:]), attn.to_k(seq), attn.to_v(seq)
        heads, hd = attn.heads, d // attn.heads
        out = []
        for i in range(heads):
            s = slice(i * hd, (i + 1) * hd)
            w = torch.softmax(q[..., s] @ k[..., s].transpose(-1, -2) / math.sqrt(hd), dim=-1)
            out.append(w @ v[..., s])
        return attn.to_out[0](torch.cat(out, dim=-1))

    h = xs + attend(block.attn1, block.norm1, xs)
    h = h + attend(block.attn2, block.norm2, h)
    h = h + block.ff(block.norm3(h))
    return x + module.proj_out(h).permute(2, 3, 0, 1).reshape(num_frames, c, *x.shape[-2:])


def test_motion_frames_are_keys_and_values_before_the_clip(adapter):
    module = _module(adapter)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 32, 3, 3, generator=g, dtype=torch.float64)
    motion = torch.randn(2, 32, 3, 3, generator=g, dtype=torch.float64)
    with torch.no_grad():
        out = temporal_attention(module, x, num_frames=5, motion=motion)
        expected = _manual_temporal(module, x, 5, motion)
    assert out.shape == x.shape
    assert torch.allclose(out, expected, atol=1e-10)


def test_group_norm_is_per_frame(adapter):
    # shifting one frame by a constant leaves its normalisation, hence every other frame's output, unchanged
    # (diffusers pools the statistics over frames: there the other frames would change)
    module = _module(adapter)
    x = torch.randn(4, 32, 3, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    shifted = x.clone()
    shifted[2] += 5.0
    with torch.no_grad():
        a, b = temporal_attention(module, x, 4), temporal_attention(module, shifted, 4)
        pooled_a, pooled_b = module(x, num_frames=4), module(shifted, num_frames=4)
    assert torch.allclose(a[[0, 1, 3]], b[[0, 1, 3]], atol=1e-12)
    assert torch.allclose(b[2] - a[2], torch.full_like(a[2], 5.0), atol=1e-12)
    assert not torch.allclose(pooled_a[0], pooled_b[0], atol=1e-6)


def test_masked_motion_frames_do_not_matter(adapter):
    module = _module(adapter)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2 * 3, 32, 2, 2, generator=g, dtype=torch.float64)  # 2 clips x 3 frames
    m1, m2 = (torch.randn(2 * 2, 32, 2, 2, generator=g, dtype=torch.float64) for _ in range(2))
    masked = torch.zeros(2, 2, dtype=torch.bool)
    with torch.no_grad():
        out1 = temporal_attention(module, x, 3, m1, masked)
        out2 = temporal_attention(module, x, 3, m2, masked)
        open1 = temporal_attention(module, x, 3, m1)
        open2 = temporal_attention(module, x, 3, m2)
        half = temporal_attention(module, x, 3, m2, torch.tensor([[False, False], [True, True]]))
    assert torch.equal(out1, out2)
    assert not torch.allclose(open1, open2, atol=1e-6)
    assert torch.equal(half[:3], out1[:3]) and torch.allclose(half[3:], open2[3:], atol=1e-12)


def test_zero_output_makes_every_module_the_identity(adapter):
    zero_motion_output(adapter)
    x = torch.randn(6, 32, 2, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    motion = torch.randn(2, 32, 2, 2, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(temporal_attention(_module(adapter), x, 6, motion), x)


# -------------------------------------------------------------------------------- loading
def _to_original_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers MotionAdapter keys -> the original AnimateDiff names (mm_sd_v15*.ckpt), written out here
    independently of the loader's conversion; one position table per attention layer."""
    out = {}
    for key, value in state.items():
        head, tail = key.split(".motion_modules.")
        index, rest = tail.split(".", 1)
        if rest.endswith("pos_embed.pe"):
            block = rest.removesuffix(".pos_embed.pe")
            for a in (0, 1):
                out[f"{head}.motion_modules.{index}.temporal_transformer.{block}.attention_blocks.{a}.pos_encoder.pe"] \
                    = value.clone()
            continue
        for new, old in ((".norm1.", ".norms.0."), (".norm2.", ".norms.1."), (".norm3.", ".ff_norm."),
                         (".attn1.", ".attention_blocks.0."), (".attn2.", ".attention_blocks.1.")):
            rest = ("." + rest).replace(new, old)[1:]
        out[f"{head}.motion_modules.{index}.temporal_transformer.{rest}"] = value
    return out


def test_folder_and_original_checkpoints_load_to_identical_weights(tmp_path, unet):
    source = build_motion_adapter(unet, seed=7, zero_output=False)
    source.save_pretrained(tmp_path / "adapter")
    original = _to_original_layout(source.state_dict())
    assert any("temporal_transformer" in k for k in original) and not any(".attn1." in k for k in original)
    torch.save(original, tmp_path / "mm_tiny.ckpt")
    save_file(original, str(tmp_path / "mm_tiny.safetensors"))
    torch.save({"state_dict": original}, tmp_path / "wrapped.ckpt")

    expected = source.state_dict()
    for path in ("adapter", "mm_tiny.ckpt", "mm_tiny.safetensors", "wrapped.ckpt"):
        loaded = load_motion_adapter(tmp_path / path, unet).state_dict()
        assert loaded.keys() == expected.keys(), path
        assert all(torch.equal(loaded[k], expected[k]) for k in expected), path


def test_original_checkpoint_without_mid_block_or_position_tables(tmp_path, unet):
    # AnimateDiff v1 has no mid-block module; diffusers' conversion drops position tables, which are rebuilt
    source = build_motion_adapter(unet, seed=8, zero_output=False)
    original = {k: v for k, v in _to_original_layout(source.state_dict()).items()
                if not k.startswith("mid_block") and not k.endswith("pos_encoder.pe")}
    torch.save(original, tmp_path / "v1.ckpt")
    loaded = load_motion_adapter(tmp_path / "v1.ckpt", unet)
    assert loaded.mid_block is None
    assert torch.equal(loaded.down_blocks[0].motion_modules[0].proj_in.weight,
                       source.down_blocks[0].motion_modules[0].proj_in.weight)


def test_motion_weights_that_did_not_load_are_an_error(tmp_path, unet):
    source = build_motion_adapter(unet, seed=9, zero_output=False)
    source.save_pretrained(tmp_path / "ok")
    weights = load_file(str(tmp_path / "ok" / "diffusion_pytorch_model.safetensors"))

    missing = dict(weights)
    del missing["up_blocks.1.motion_modules.1.proj_out.weight"]
    (tmp_path / "missing").mkdir()
    (tmp_path / "missing" / "config.json").write_text((tmp_path / "ok" / "config.json").read_text())
    save_file(missing, str(tmp_path / "missing" / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(MotionWeightsError, match="missing .*proj_out.weight"):
        load_motion_adapter(tmp_path / "missing", unet)

    extra = {**weights, "down_blocks.0.motion_modules.0.temporal_transformer.spare": torch.zeros(1)}
    save_file(extra, str(tmp_path / "extra.safetensors"))
    with pytest.raises(MotionWeightsError, match="unexpected"):
        load_motion_adapter(tmp_path / "extra.safetensors", unet)

    wrong_table = _to_original_layout(source.state_dict())
    for key in [k for k in wrong_table if k.endswith("pos_encoder.pe")][:2]:  # both tables of one block
        wrong_table[key] = wrong_table[key] + 1.0
    torch.save(wrong_table, tmp_path / "table.ckpt")
    with pytest.raises(MotionWeightsError, match="position table"):
        load_motion_adapter(tmp_path / "table.ckpt", unet)
    wrong_table[key] = wrong_table[key] - 1.0  # now the block's two tables differ
    torch.save(wrong_table, tmp_path / "table.ckpt")
    with pytest.raises(MotionWeightsError, match="position tables of one block differ"):
        load_motion_adapter(tmp_path / "table.ckpt", unet)

    config = json.loads((tmp_path / "ok" / "config.json").read_text())
    big = MotionAdapter(**{**{k: v for k, v in config.items() if not k.startswith("_")},
                           "block_out_channels": [64, 128]})
    big.save_pretrained(tmp_path / "big")
    with pytest.raises(MotionAdapterMismatchError):
        load_motion_adapter(tmp_path / "big", unet)


def test_files_that_are_not_motion_weights(tmp_path, unet):
    with pytest.raises(JointPortraitError, match="no such file"):
        load_motion_adapter(tmp_path / "absent.ckpt", unet)
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable checkpoint"):
        load_motion_adapter(tmp_path / "junk.ckpt", unet)
    torch.save({"conv_in.weight": torch.zeros(1)}, tmp_path / "unet.ckpt")
    with pytest.raises(InputError, match="no motion-module weights"):
        load_motion_adapter(tmp_path / "unet.ckpt", unet)
    (tmp_path / "empty").mkdir()
    with pytest.raises(JointPortraitError, match="MotionAdapter folder"):
        load_motion_adapter(tmp_path / "empty", unet)


def test_pickled_checkpoints_are_read_without_running_code(tmp_path, unet):
    class Payload:
        def __reduce__(self):
            return (print, ("this must not run",))

    torch.save({"down_blocks.0.motion_modules.0.temporal_transformer.x": Payload()}, tmp_path / "evil.ckpt")
    with pytest.raises(InputError, match="not a readable checkpoint"):
        load_motion_adapter(tmp_path / "evil.ckpt", unet)
