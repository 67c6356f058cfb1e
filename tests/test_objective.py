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


def _record(joint, scheduler) -> dict:
    """Spy on one loss call: the noise, clean latents and timesteps it hands to ``scheduler.add_noise``,
    and the denoiser's input and output."""
    seen: dict = {}
    add_noise = scheduler.add_noise

    def spy_add_noise(z0, noise, t):
        seen.update(z0=z0.detach().clone(), noise=noise.detach().clone(), t=t.clone())
        return add_noise(z0, noise, t)

    scheduler.add_noise = spy_add_noise  # the instance attribute shadows the method for this scheduler only

    def hook(module, args, kwargs, output):
        seen.update(model_input=args[0].detach().clone(), model_t=args[1].clone(), pred=output.detach().clone())

    joint.register_forward_hook(hook, with_kwargs=True)
    return seen


def test_loss_is_mse_on_concatenated_independent_noise(parts):
    joint, vae, scheduler, batch = parts
    seen = _record(joint, scheduler)
    out = joint_diffusion_loss(joint, vae, scheduler, batch, generator=torch.Generator().manual_seed(7))
    noise, t, z0 = seen["noise"], seen["t"], seen["z0"]
    with torch.no_grad():
        torch.testing.assert_close(z0, torch.cat([encode_rgb(vae, batch["image"]), encode_depth(vae, batch["depth"])], 1))
    # eq. 3: both halves noised at the SAME timestep per sample, each with its own noise
    assert noise.shape == (2, 8, 8, 8) and t.shape == (2,) and torch.equal(seen["model_t"], t)
    abar = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(seen["model_input"], abar.sqrt() * z0 + (1 - abar).sqrt() * noise)
    # the loss's own draw: RGB and depth noise are different draws, uncorrelated, each standard normal
    rgb, depth = noise[:, :4].flatten(), noise[:, 4:].flatten()
    assert not torch.allclose(rgb, depth)
    assert abs(float(torch.corrcoef(torch.stack([rgb, depth]))[0, 1])) < 0.15  # 512 pairs: 3 sigma = 0.13
    assert abs(float(noise.mean())) < 0.15 and abs(float(noise.std()) - 1) < 0.1
    # eq. 5: MSE between the prediction and the concatenated noise, over all 8 channels
    assert torch.allclose(out.loss, F.mse_loss(seen["pred"], noise), atol=1e-6)
    assert torch.allclose(out.loss_rgb, F.mse_loss(seen["pred"][:, :4], noise[:, :4]), atol=1e-6)
    assert torch.allclose(out.loss, (out.loss_rgb + out.loss_depth) / 2, atol=1e-6)


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


def test_v_prediction_target_is_the_schedulers_velocity(parts):
    joint, vae, scheduler, batch = parts
    seen = _record(joint, scheduler)
    v = joint_diffusion_loss(joint, vae, scheduler, batch, prediction_type="v_prediction",
                             generator=torch.Generator().manual_seed(3))
    z0, noise, t, pred = seen["z0"], seen["noise"], seen["t"], seen["pred"]
    velocity = scheduler.get_velocity(z0, noise, t)
    abar = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)  # v = sqrt(abar) eps - sqrt(1 - abar) z0, by hand
    torch.testing.assert_close(velocity, abar.sqrt() * noise - (1 - abar).sqrt() * z0)
    assert torch.allclose(v.loss, F.mse_loss(pred, velocity), atol=1e-6)
    assert not torch.allclose(v.loss, F.mse_loss(pred, noise), atol=1e-3)  # not the epsilon target
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
