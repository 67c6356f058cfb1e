"""The joint objective (paper eq. 5) and its gradients."""

import pytest
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from jointportrait import joint_diffusion_loss
from jointportrait.latent_codec import encode_depth, encode_rgb
from jointportrait.loading import joint_components_from_base, tiny_base_components
from jointportrait.models import JointDenoiser, widen_unet


@pytest.fixture()
def parts():
    comps = joint_components_from_base(tiny_base_components(seed=0))
    joint = JointDenoiser(comps.unet, comps.reference_unet)
    scheduler = DDPMScheduler.from_config(comps.scheduler.config)
    g = torch.Generator().manual_seed(0)
    batch = {
        "image": torch.rand(2, 3, 64, 64, generator=g) * 2 - 1,
        "depth": torch.rand(2, 1, 64, 64, generator=g) * 2 - 1,
        "reference": torch.rand(2, 3, 64, 64, generator=g) * 2 - 1,
    }
    return joint, comps.vae, scheduler, batch


def test_loss_is_mse_on_concatenated_independent_noise(parts):
    joint, vae, scheduler, batch = parts
    out = joint_diffusion_loss(joint, vae, scheduler, batch, generator=torch.Generator().manual_seed(7))
    # Recompute eq. 3-5 independently with the same random draws.
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        z0 = torch.cat([encode_rgb(vae, batch["image"]), encode_depth(vae, batch["depth"])], 1)
        noise = torch.randn(z0.shape, generator=g)
        t = torch.randint(0, 1000, (2,), generator=g)
        abar = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
        noisy = abar.sqrt() * z0 + (1 - abar).sqrt() * noise
        ref = encode_rgb(vae, batch["reference"])
        pred = joint(noisy, t, torch.zeros(2, 1, 32), reference_latents=ref)
    assert torch.allclose(out.loss, F.mse_loss(pred, noise), atol=1e-6)
    assert torch.allclose(out.loss, (out.loss_rgb + out.loss_depth) / 2, atol=1e-6)
    assert not torch.allclose(noise[:, :4], noise[:, 4:])  # independent noise per domain


def test_gradients_reach_the_reference_net(parts):
    joint, vae, scheduler, batch = parts
    joint_diffusion_loss(joint, vae, scheduler, batch, generator=torch.Generator().manual_seed(1)).loss.backward()
    ref_grads = [p.grad.abs().sum() for p in joint.reference_unet.parameters() if p.grad is not None]
    assert ref_grads and sum(ref_grads) > 0
    assert joint.unet.conv_in.weight.grad[:, 4:].abs().sum() > 0  # the zero-initialised depth inputs learn


def test_full_reference_dropout_cuts_the_reference_net_off(parts):
    joint, vae, scheduler, batch = parts
    joint_diffusion_loss(joint, vae, scheduler, batch, reference_dropout=1.0,
                         generator=torch.Generator().manual_seed(1)).loss.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in joint.reference_unet.parameters())


def test_v_prediction_target(parts):
    joint, vae, scheduler, batch = parts
    eps = joint_diffusion_loss(joint, vae, scheduler, batch, generator=torch.Generator().manual_seed(3)).loss
    v = joint_diffusion_loss(joint, vae, scheduler, batch, prediction_type="v_prediction",
                             generator=torch.Generator().manual_seed(3)).loss
    assert torch.isfinite(v) and not torch.allclose(eps, v)
    with pytest.raises(ValueError, match="prediction_type"):
        joint_diffusion_loss(joint, vae, scheduler, batch, prediction_type="sample")


def test_stage2_needs_masks_and_uses_them(parts):
    joint, vae, scheduler, batch = parts
    stage2 = JointDenoiser(widen_unet(joint.unet, 18, 8), joint.reference_unet)
    with pytest.raises(ValueError, match="rgb_mask"):
        joint_diffusion_loss(stage2, vae, scheduler, batch)
    batch = dict(batch, rgb_mask=torch.zeros(2, 1, 64, 64), depth_mask=torch.ones(2, 1, 64, 64))
    out = joint_diffusion_loss(stage2, vae, scheduler, batch, generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert stage2.unet.conv_in.weight.grad[:, 8:].abs().sum() > 0  # the conditioning channels receive gradient


def test_unused_reference_parameters_are_found_and_frozen(parts):
    joint = parts[0]
    frozen = joint.freeze_reference_parameters_without_reader(latent_size=8)
    assert "conv_out.weight" in frozen and "conv_norm_out.weight" in frozen
    assert not any(name.startswith("down_blocks.0") for name in frozen)
    assert all(p.grad is None for p in joint.reference_unet.parameters())
