"""``data.cache_latents``: items and VAE latents encoded once give the same training as encoding every step."""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL

from jointportrait.conditioning import build_inpainting_condition
from jointportrait.data.datasets import Draw, FrameDataset, MixedDataset
from jointportrait.errors import InputError
from jointportrait.latent_codec import batch_latents, encode_blank, encode_depth, encode_rgb
from jointportrait.training.config import config_from_dict
from jointportrait.training.latent_cache import FrameLatentCache, LatentCache, cache_latents
from jointportrait.training.trainer import train


def _vae() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(16, 32),
                         layers_per_block=1, latent_channels=4, norm_num_groups=8).eval()


class _Items(torch.utils.data.Dataset):
    def __init__(self, n: int = 5, size: int = 16) -> None:
        g = torch.Generator().manual_seed(1)
        self.data = [{"image": torch.rand(3, size, size, generator=g) * 2 - 1,
                      "depth": torch.rand(1, size, size, generator=g) * 2 - 1,
                      "reference": torch.rand(3, size, size, generator=g) * 2 - 1,
                      "subject": f"s{i}"} for i in range(n)]
        self.reads = 0

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict:
        self.reads += 1
        return dict(self.data[i])


def test_cache_reads_each_item_once_and_holds_the_latents_of_each_item():
    vae, items = _vae(), _Items()
    cache = LatentCache(items, vae, batch_size=2)  # batches of 2, 2, 1
    assert items.reads == len(items) == len(cache)
    for i in range(len(items)):
        got, raw = cache[i], items.data[i]
        assert got["subject"] == raw["subject"] and torch.equal(got["image"], raw["image"])
        with torch.no_grad():  # one item alone through the encoder: independent of the caching batches
            assert torch.allclose(got["image_latents"], encode_rgb(vae, raw["image"][None])[0], atol=1e-5)
            assert torch.allclose(got["depth_latents"], encode_depth(vae, raw["depth"][None])[0], atol=1e-5)
            assert torch.allclose(got["reference_latents"], encode_rgb(vae, raw["reference"][None])[0], atol=1e-5)
    assert items.reads == len(items)  # served from memory


def _equal_items(cached: dict, plain: dict) -> None:
    assert set(cached) - set(plain) == {"image_latents", "depth_latents", "reference_latents"}
    for key, value in plain.items():
        assert torch.equal(cached[key], value) if torch.is_tensor(value) else cached[key] == value, key


@pytest.mark.parametrize("mixed", [False, True])
def test_frame_cache_serves_every_draw_exactly_as_the_dataset(wide_dataset, mixed):
    """Per frame, not per pair: each draw's reference is drawn anew and the cache assembles it from the
    cached frames; every tensor equals reading the files, the latents equal encoding that item."""
    vae = _vae()
    frames = FrameDataset(wide_dataset, size=24, seed=5)  # centre crops: fixed per frame
    dataset = MixedDataset([(frames, 1.0), (FrameDataset(wide_dataset, size=24, seed=6), 2.0)], seed=5) \
        if mixed else frames
    cache = cache_latents(dataset, vae, batch_size=4)
    assert isinstance(cache, FrameLatentCache) and len(cache) == len(dataset)
    references = set()
    for sample in range(0, 40, 3):
        key = Draw(sample % len(dataset), sample // len(dataset), sample)
        got, plain = cache[key], dataset[key]
        _equal_items(got, plain)
        references.add((plain["index"], float(plain["reference"].sum())))
        with torch.no_grad():
            assert torch.allclose(got["image_latents"], encode_rgb(vae, plain["image"][None])[0], atol=1e-5)
            assert torch.allclose(got["depth_latents"], encode_depth(vae, plain["depth"][None])[0], atol=1e-5)
            assert torch.allclose(got["reference_latents"], encode_rgb(vae, plain["reference"][None])[0], atol=1e-5)
    assert len(references) > len({i for i, _ in references})  # some frame met two different references
    _equal_items(cache[2], dataset[2])  # the fixed draw of an int index too


def test_frame_cache_refuses_random_crops_that_vary_and_keeps_frames_without_a_vae(wide_dataset):
    with pytest.raises(InputError, match="caching latents needs frames of the training resolution"):
        cache_latents(FrameDataset(wide_dataset, size=24, random_crop=True))
    with pytest.raises(InputError, match="crops"):  # 24 x 32 frames scale up to 32 x 43: still 12 crops
        cache_latents(FrameDataset(wide_dataset, size=32, random_crop=True))
    plain = FrameDataset(wide_dataset, size=24)
    cache = cache_latents(plain)
    assert set(cache[Draw(1, 0, 1)]) == set(plain[Draw(1, 0, 1)])


def test_cache_without_a_vae_keeps_the_items_only():
    cache = LatentCache(_Items(3), None)
    assert set(cache[0]) == {"image", "depth", "reference", "subject"}


def test_batch_latents_prefers_the_cached_latents_and_rejects_unknown_keys():
    vae = _vae()
    batch = {"image": torch.zeros(1, 3, 16, 16), "image_latents": torch.full((1, 4, 8, 8), 7.0)}
    assert torch.equal(batch_latents(vae, batch, "image"), batch["image_latents"])
    with pytest.raises(KeyError, match="mask"):
        batch_latents(vae, batch, "mask")


def test_inpainting_condition_from_known_latents_equals_encoding_every_row():
    vae = _vae()
    g = torch.Generator().manual_seed(3)
    rgb, depth = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1, torch.rand(4, 1, 16, 16, generator=g) * 2 - 1
    box = torch.zeros(1, 16, 16)
    box[:, 4:12, 2:9] = 1.0
    # rows: depth estimation (0 / 1), depth-to-image (1 / 0), joint generation (1 / 1), spatial edit (box / 0)
    rgb_mask = torch.stack([torch.zeros(1, 16, 16), torch.ones(1, 16, 16), torch.ones(1, 16, 16), box])
    depth_mask = torch.stack([torch.ones(1, 16, 16), torch.zeros(1, 16, 16), torch.ones(1, 16, 16),
                              torch.zeros(1, 16, 16)])
    with torch.no_grad():
        plain = build_inpainting_condition(vae, rgb, depth, rgb_mask, depth_mask).as_channels()
        reused = build_inpainting_condition(vae, rgb, depth, rgb_mask, depth_mask, rgb_latents=encode_rgb(vae, rgb),
                                            depth_latents=encode_depth(vae, depth)).as_channels()
        blank = encode_rgb(vae, torch.zeros(1, 3, 16, 16))[0]
    assert torch.allclose(plain, reused, atol=1e-5)
    # worked out by hand: a blanked domain is the latent of an all-zero input, a kept one the input's latent
    assert torch.allclose(reused[0, 2:6], encode_rgb(vae, rgb[:1])[0], atol=1e-5)
    assert torch.allclose(reused[0, 6:10], blank, atol=1e-5) and torch.allclose(reused[2, 2:6], blank, atol=1e-5)


def test_blank_latent_is_encoded_once_per_vae_and_size_until_a_weight_changes():
    vae = _vae()
    encodes = []
    vae.encoder.register_forward_hook(lambda *_: encodes.append(1))
    with torch.no_grad():
        first = encode_blank(vae, 16, 16)
        assert torch.equal(first, encode_rgb(vae, torch.zeros(1, 3, 16, 16)))
        encodes.clear()
        assert torch.equal(encode_blank(vae, 16, 16), first) and encodes == []  # kept
        other = encode_blank(vae, 24, 16)
        assert other.shape == (1, 4, 12, 8) and encodes == [1]  # another size is encoded (2 levels: /2)
        vae.encoder.conv_in.bias.add_(0.5)  # an optimizer step on the VAE (in place)
        changed = encode_blank(vae, 16, 16)
        assert not torch.allclose(changed, first) and torch.equal(changed, encode_rgb(vae, torch.zeros(1, 3, 16, 16)))
        vae.load_state_dict(_vae().state_dict())  # new weights loaded
        assert torch.equal(encode_blank(vae, 16, 16), first)
    # with gradients flowing into the VAE the latent carries them and is not kept
    encodes.clear()
    assert encode_blank(vae, 16, 16).requires_grad and encode_blank(vae, 16, 16).requires_grad and len(encodes) == 2


@pytest.mark.parametrize("kind,in_channels", [("joint", 8), ("joint", 18), ("image_to_depth", 8)])
def test_cached_training_repeats_the_uncached_losses(synth_data, tmp_path, kind, in_channels):
    from accelerate.state import AcceleratorState

    def run(cache: bool, name: str) -> list[float]:
        cfg = config_from_dict({
            "model": {"kind": kind, "base": "tiny", "in_channels": in_channels},
            "data": {"root": str(synth_data), "resolution": 64, "cache_latents": cache},
            "optim": {"learning_rate": 1e-3},
            "train": {"batch_size": 2, "max_steps": 3, "checkpoint_every": 3, "reference_dropout": 0.5},
            "validation": {"every": 0},
        })
        result = train(cfg, tmp_path / name)
        AcceleratorState._reset_state(reset_partial_state=True)
        return result.losses

    plain, cached = run(False, "plain"), run(True, "cached")
    assert len(cached) == 3
    assert cached == pytest.approx(plain, rel=1e-4)
