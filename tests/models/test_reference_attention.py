"""Reference attention (paper Sec. 3.3): keys/values over [own, reference] tokens, queries own only."""

import contextlib
import copy
import math

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

import jointportrait.models.reference_attention as reference_attention
from jointportrait.loading import tiny_base_components
from jointportrait.models import (
    BankAwareAttnProcessor,
    JointDenoiser,
    ReferenceBank,
    ReferenceReaderProcessor,
    ReferenceWriterProcessor,
    install_reference_attention,
)
from jointportrait.models.reference_attention import (
    run_reference_net,
    self_projections,
    spatial_self_attention_names,
)
from jointportrait.models.widen import widen_unet


@pytest.fixture()
def attn():
    torch.manual_seed(0)
    return Attention(query_dim=16, heads=2, dim_head=8).eval()


def _manual_attention(attn, x, ref):
    """softmax(Q K^T / sqrt(d)) V per head with K, V over [x, ref], written out by hand."""
    q = attn.to_q(x)
    context = torch.cat([x, ref], dim=1)
    k, v = attn.to_k(context), attn.to_v(context)
    b, n, _ = x.shape
    heads, d = attn.heads, q.shape[-1] // attn.heads
    outs = []
    for h in range(heads):
        qh, kh, vh = (t[..., h * d:(h + 1) * d] for t in (q, k, v))
        weights = torch.softmax(qh @ kh.transpose(1, 2) / math.sqrt(d), dim=-1)
        outs.append(weights @ vh)
    return attn.to_out[0](torch.cat(outs, dim=-1))


def test_reader_attends_over_own_and_reference_tokens(attn):
    g = torch.Generator().manual_seed(1)
    x, ref = torch.randn(2, 6, 16, generator=g), torch.randn(2, 5, 16, generator=g)
    bank = ReferenceBank({"blk": ref})
    with torch.no_grad():
        out = ReferenceReaderProcessor("blk")(attn, x, reference_bank=bank)
        expected = _manual_attention(attn, x, ref)
    assert out.shape == x.shape
    assert torch.allclose(out, expected, atol=1e-5)


def test_dropped_reference_equals_plain_self_attention(attn):
    g = torch.Generator().manual_seed(2)
    x, ref = torch.randn(3, 6, 16, generator=g), torch.randn(3, 4, 16, generator=g)
    keep = torch.tensor([True, False, True])
    with torch.no_grad():
        mixed = ReferenceReaderProcessor("blk")(attn, x, reference_bank=ReferenceBank({"blk": ref}, keep))
        plain = AttnProcessor2_0()(attn, x)
        with_ref = ReferenceReaderProcessor("blk")(attn, x, reference_bank=ReferenceBank({"blk": ref}))
    assert torch.allclose(mixed[1], plain[1], atol=1e-6)  # dropped sample: own tokens only
    assert torch.allclose(mixed[[0, 2]], with_ref[[0, 2]], atol=1e-6)  # kept samples unchanged by the mask
    assert not torch.allclose(with_ref[1], plain[1], atol=1e-3)


def test_writer_stores_inputs_and_returns_plain_attention(attn):
    x = torch.randn(2, 6, 16)
    bank = ReferenceBank()
    with torch.no_grad():
        out = ReferenceWriterProcessor("blk")(attn, x, reference_bank=bank)
        plain = AttnProcessor2_0()(attn, x)
    assert torch.equal(bank.features["blk"], x)
    assert torch.allclose(out, plain, atol=1e-6)


def test_bank_batch_mismatch_is_an_error(attn):
    with pytest.raises(ValueError, match="ReferenceBank.select"):
        ReferenceReaderProcessor("blk")(attn, torch.randn(2, 6, 16),
                                              reference_bank=ReferenceBank({"blk": torch.randn(1, 4, 16)}))


def test_bank_select_repeats_rows_and_sets_keep():
    bank = ReferenceBank({"a": torch.arange(3.0).view(3, 1, 1)})
    sel = bank.select(torch.tensor([0, 0, 2]), keep=torch.tensor([True, False, True]))
    assert sel.features["a"].flatten().tolist() == [0.0, 0.0, 2.0]
    assert sel.keep.tolist() == [True, False, True]


def test_install_pairs_every_self_attention_by_name():
    base = tiny_base_components(seed=0)
    denoiser, reference = widen_unet(base.unet, 8, 8), base.unet
    install_reference_attention(reference, denoiser)
    names = spatial_self_attention_names(denoiser)
    assert names and names == spatial_self_attention_names(reference)
    for n, proc in denoiser.attn_processors.items():
        assert type(proc) is (ReferenceReaderProcessor if n in names else BankAwareAttnProcessor)
        assert n not in names or proc.name == n
    for n, proc in reference.attn_processors.items():
        assert type(proc) is (ReferenceWriterProcessor if n in names else BankAwareAttnProcessor)


def test_layout_mismatch_is_refused():
    a = tiny_base_components(seed=0).unet
    from diffusers import UNet2DConditionModel

    b = UNet2DConditionModel(block_out_channels=(32,), down_block_types=("CrossAttnDownBlock2D",),
                             up_block_types=("CrossAttnUpBlock2D",), cross_attention_dim=32, norm_num_groups=8,
                             layers_per_block=1, attention_head_dim=8)
    with pytest.raises(ValueError, match="layouts"):
        install_reference_attention(b, a)


def test_reference_changes_the_prediction_and_runs_once():
    base = tiny_base_components(seed=0)
    joint = JointDenoiser(widen_unet(base.unet, 8, 8), base.unet).eval()
    g = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 8, 8, 8, generator=g)
    ehs = torch.zeros(1, 1, 32)
    ref_a, ref_b = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)
    with torch.no_grad():
        bank_a = joint.encode_reference(ref_a, ehs)
        out_a = joint(sample, 10, ehs, reference_bank=bank_a)
        out_a_again = joint(sample, 10, ehs, reference_latents=ref_a)
        out_b = joint(sample, 10, ehs, reference_latents=ref_b)
    assert len(bank_a.features) == len(spatial_self_attention_names(joint.unet))
    assert torch.allclose(out_a, out_a_again, atol=1e-6)  # a bank reused across calls = running the ReferenceNet again
    assert (out_a - out_b).abs().max() > 1e-4


def _joint_and_inputs(seed: int = 0):
    base = tiny_base_components(seed=seed)
    joint = JointDenoiser(widen_unet(base.unet, 8, 8), copy.deepcopy(base.unet))
    g = torch.Generator().manual_seed(seed)
    sample, ref = torch.randn(2, 8, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    return joint, sample, ref, torch.randn(2, 1, 32, generator=g)


def test_reference_net_stops_after_its_last_writer_with_the_same_bank():
    joint, _, ref, ehs = _joint_and_inputs()
    ran = []
    tail = [joint.reference_unet.conv_out, joint.reference_unet.conv_norm_out]
    handles = [m.register_forward_pre_hook(lambda *_: ran.append(1)) for m in tail]
    try:
        with torch.no_grad():
            early = run_reference_net(joint.reference_unet, ref, ehs)
            assert ran == []  # the output norm and conv never ran
            full = run_reference_net(joint.reference_unet, ref, ehs, stop_early=False)
            assert ran == [1, 1]
    finally:
        for h in handles:
            h.remove()
    assert early.features.keys() == full.features.keys()
    assert all(torch.equal(early.features[k], full.features[k]) for k in full.features)
    assert early.stop_after is None  # disarmed: a later recomputation runs through


@pytest.mark.parametrize("checkpointing", ["off", "on", "on, no early stop"])
def test_stopping_early_leaves_every_gradient_unchanged(checkpointing):
    """Training through an early-stopped ReferenceNet gives the gradients of a full run, also under
    gradient checkpointing (whose recomputation meets the stop signal's writer, or stops before it)."""
    grads = {}
    for stop_early in (True, False):
        joint, sample, ref, ehs = _joint_and_inputs()
        joint.train()
        if checkpointing != "off":
            joint.unet.enable_gradient_checkpointing()
            joint.reference_unet.enable_gradient_checkpointing()
        context = (torch.utils.checkpoint.set_checkpoint_early_stop(False) if checkpointing == "on, no early stop"
                   else contextlib.nullcontext())
        with context:
            bank = run_reference_net(joint.reference_unet, ref, ehs, stop_early=stop_early)
            pred = joint(sample, torch.tensor([10, 500]), ehs, reference_bank=bank)
            pred.square().mean().backward()
        grads[stop_early] = {n: p.grad.clone() for n, p in joint.named_parameters() if p.grad is not None}
    early, full = grads[True], grads[False]
    assert early.keys() == full.keys()
    assert any(n.startswith("reference_unet.") for n in early)  # the ReferenceNet trains through the readers
    for n in full:
        assert torch.allclose(early[n], full[n], atol=1e-6, rtol=1e-5), n


def test_fused_projections_equal_separate_ones_and_fall_back_for_replaced_layers(attn):
    x = torch.randn(2, 6, 16)
    with torch.no_grad():
        fused = self_projections(attn, x)
        assert all(torch.allclose(a, b(x), atol=1e-6) for a, b in zip(fused, (attn.to_q, attn.to_k, attn.to_v)))
        calls = []
        wrapped = torch.nn.Sequential(attn.to_k)  # not a plain Linear (as a LoRA-wrapped layer is not)
        wrapped.register_forward_hook(lambda *_: calls.append(1))
        attn.to_k = wrapped
        q, k, v = self_projections(attn, x)
    assert calls == [1] and torch.allclose(k, fused[1], atol=1e-6)


def test_reference_keys_are_projected_once_per_training_step_and_once_per_sampling_call(monkeypatch):
    joint, sample, ref, ehs = _joint_and_inputs()
    n_readers = len(spatial_self_attention_names(joint.unet))
    tokens = []  # token count of every key/value projection of a reader
    original = reference_attention.key_value

    def counting(attn, x):
        if isinstance(attn.processor, ReferenceReaderProcessor):
            tokens.append(x.shape[1])
        return original(attn, x)

    monkeypatch.setattr(reference_attention, "key_value", counting)
    joint.train()
    joint(sample, torch.tensor([10, 500]), ehs, reference_latents=ref)
    # one product per reader over [own; reference] tokens (both 8x8 or 4x4 here: twice the layer's own)
    assert len(tokens) == n_readers and all(n in (2 * 64, 2 * 16) for n in tokens)
    tokens.clear()
    joint.eval()
    with torch.no_grad():
        bank = joint.encode_reference(ref, ehs)
        for t in (900, 500, 100):
            joint(sample, t, ehs, reference_bank=bank)
    # three sampling steps, the reference projected by the first only (own keys come with the fused QKV)
    assert len(tokens) == n_readers and all(n in (64, 16) for n in tokens)
    assert len(bank.kv_cache) == n_readers
