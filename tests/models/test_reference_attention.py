"""Reference attention (paper Sec. 3.3): keys/values over [own, reference] tokens, queries own only."""

import math

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from jointportrait.loading import tiny_base_components
from jointportrait.models import (
    BankAwareAttnProcessor,
    JointDenoiser,
    ReferenceBank,
    ReferenceReaderProcessor,
    ReferenceWriterProcessor,
    install_reference_attention,
)
from jointportrait.models.reference_attention import spatial_self_attention_names
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
