"""Where the time of a denoiser call or training step goes, and the floor it sets (issue 17).

The machine these benchmarks run on is shared: wall time includes waiting for
a core. Everything here counts CPU time of this process (``time.process_time``;
the benchmarks run torch with one thread, so CPU time is compute time) or, on a
GPU, synchronised wall time.

- :func:`module_times`: inclusive time per kind of module (the ReferenceNet, the
  denoiser, spatial self-attention, cross-attention, ResNet blocks, ...) from
  forward hooks; nested kinds are each inclusive of what they contain.
- :func:`op_times`: ``torch.profiler`` self time per operator class
  (attention kernels, matrix products, convolutions, norms, copies, ...),
  forward and backward. The profiler's clock is wall time, so on a shared
  machine only its shares are meaningful; they are reported as shares.
- :func:`record_attention_shapes` and :func:`attention_extra`: the shapes of every
  ``scaled_dot_product_attention`` call of a function, and the time that the
  reference tokens add to those calls (each timed in isolation, with and
  without the reference keys). That extra is work no implementation of
  reference attention avoids: it is what the floors add on top of the plain
  UNet work.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.resnet import ResnetBlock2D

import jointportrait.models.reference_attention as reference_attention


def clock(device: torch.device | str = "cpu") -> Callable[[], float]:
    """Seconds: process CPU time on the CPU, synchronised wall time on a GPU."""
    if torch.device(device).type == "cuda":
        def cuda_clock() -> float:
            torch.cuda.synchronize()
            return time.perf_counter()
        return cuda_clock
    return time.process_time


def measure(fn: Callable[[], object], device: torch.device | str = "cpu") -> float:
    """Seconds of one call of ``fn`` on :func:`clock`."""
    now = clock(device)
    start = now()
    fn()
    return now() - start


def interleaved(fns: dict[str, Callable[[], object]], rounds: int, device: torch.device | str = "cpu",
                warmup: int = 1) -> dict[str, list[float]]:
    """Times of every function, ``rounds`` times, one of each per round (load hits all alike)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            samples[k].append(measure(fn, device))
    return samples


def median_spread(values: list[float]) -> tuple[float, float]:
    """(median, half the interquartile range relative to the median)."""
    med = statistics.median(values)
    if len(values) < 4:
        return med, (max(values) - min(values)) / (2 * med) if med else 0.0
    q = statistics.quantiles(values, n=4)
    return med, (q[2] - q[0]) / (2 * med) if med else 0.0


def ratio_stats(num: list[float], den: list[float]) -> tuple[float, float]:
    """Median and relative spread of the per-round ratios ``num[i] / den[i]``."""
    return median_spread([a / b for a, b in zip(num, den)])


# ----------------------------------------------------------------- by module
def _kind(module: torch.nn.Module, readers: set[int]) -> str | None:
    if isinstance(module, Attention):
        if module.is_cross_attention:
            return "cross-attention"
        return "self-attention + reference" if id(module) in readers else "self-attention"
    if isinstance(module, ResnetBlock2D):
        return "ResNet blocks"
    if isinstance(module, FeedForward):
        return "feed-forward"
    return None


@contextlib.contextmanager
def module_times(roots: dict[str, torch.nn.Module], device: torch.device | str = "cpu") -> Iterator[dict[str, float]]:
    """Inclusive forward time per root (e.g. ``{"ReferenceNet": ..., "denoiser": ...}``) and per kind of
    module inside them, accumulated over everything run in the ``with`` block."""
    now = clock(device)
    totals: dict[str, float] = defaultdict(float)
    handles = []

    def attach(module: torch.nn.Module, label: str) -> None:
        starts: list[float] = []

        def pre(*_):
            starts.append(now())

        def post(*_):
            totals[label] += now() - starts.pop()

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post, always_call=True))

    for root_name, root in roots.items():
        readers = {id(m) for n, m in root.named_modules() if isinstance(m, Attention)
                   and isinstance(m.processor, reference_attention.ReferenceReaderProcessor)}
        attach(root, root_name)
        for module in root.modules():
            kind = _kind(module, readers)
            if kind is not None:
                attach(module, f"{root_name}: {kind}")
    try:
        yield totals
    finally:
        for h in handles:
            h.remove()


# ---------------------------------------------------------------- by operator
OP_CLASSES = (
    ("attention kernel", ("scaled_dot_product", "flash_attention", "_efficient_attention", "cudnn_attention")),
    ("matrix products", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "MmBackward",
                         "AddmmBackward")),
    ("convolution", ("convolution", "conv2d", "ConvolutionBackward", "mkldnn_conv")),
    ("normalisation", ("group_norm", "layer_norm", "native_norm", "NormBackward")),
    ("copies, cat, index", ("aten::copy_", "aten::cat", "aten::index", "aten::contiguous", "CatBackward",
                            "IndexBackward", "aten::clone")),
    ("optimizer", ("Optimizer.step", "_foreach", "adamw")),
)


def op_class(name: str) -> str:
    low = name.lower()
    for label, keys in OP_CLASSES:
        if any(k.lower() in low for k in keys):
            return label
    return "other elementwise"


def op_times(fn: Callable[[], object]) -> dict[str, float]:
    """Share of ``torch.profiler`` self time per operator class in one call of ``fn`` (shares sum to 1)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])]
    with profile(activities=activities) as prof:
        fn()
    totals: dict[str, float] = defaultdict(float)
    for e in prof.key_averages():
        if e.key.startswith(("ProfilerStep", "autograd::engine::evaluate_function", "Optimizer.zero_grad")):
            continue  # containers; their children carry the self time
        own = e.self_device_time_total if torch.cuda.is_available() else e.self_cpu_time_total
        totals[op_class(e.key)] += own
    whole = sum(totals.values()) or 1.0
    return {k: v / whole for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


# ------------------------------------------------------- attention, isolated
@contextlib.contextmanager
def record_attention_shapes() -> Iterator[list[tuple[tuple[int, ...], tuple[int, ...], torch.dtype, bool]]]:
    """Shapes ``(q (B, h, N, d), k (B, h, K, d), dtype, grad)`` of every SDPA call in this package's processors."""
    calls: list = []
    original = reference_attention.F.scaled_dot_product_attention

    def recording(q, k, v, *args, **kwargs):
        calls.append((tuple(q.shape), tuple(k.shape), q.dtype, q.requires_grad or k.requires_grad))
        return original(q, k, v, *args, **kwargs)

    reference_attention.F.scaled_dot_product_attention = recording
    try:
        yield calls
    finally:
        reference_attention.F.scaled_dot_product_attention = original


def _sdpa_time(q_shape, kv_len: int, dtype, backward: bool, device, repeats: int) -> float:
    b, h, n, d = q_shape
    q = torch.randn(b, h, n, d, device=device, dtype=dtype, requires_grad=backward)
    k = torch.randn(b, h, kv_len, d, device=device, dtype=dtype, requires_grad=backward)
    v = torch.randn(b, h, kv_len, d, device=device, dtype=dtype, requires_grad=backward)
    grad = torch.randn(b, h, n, d, device=device, dtype=dtype)

    def run():
        out = F.scaled_dot_product_attention(q, k, v)
        if backward:
            out.backward(grad)

    times = [measure(run, device) for _ in range(repeats + 1)][1:]
    return statistics.median(times)


def attention_extra(calls, reference_tokens: Callable[[tuple, tuple], int], backward: bool = False,
                    device: torch.device | str = "cpu", repeats: int = 3) -> tuple[float, float]:
    """(time of the recorded SDPA calls, time the reference tokens add to them), each call timed alone.

    ``reference_tokens(q_shape, k_shape)`` says how many of a call's keys are reference tokens
    (0 for plain calls). Identical shapes are timed once and counted as often as they occur.
    """
    counts: dict[tuple, int] = defaultdict(int)
    for q_shape, k_shape, dtype, _ in calls:
        counts[(q_shape, k_shape, dtype)] += 1
    total = extra = 0.0
    for (q_shape, k_shape, dtype), n in counts.items():
        m = reference_tokens(q_shape, k_shape)
        with_ref = _sdpa_time(q_shape, k_shape[2], dtype, backward, device, repeats)
        total += n * with_ref
        if m:
            extra += n * max(0.0, with_ref - _sdpa_time(q_shape, k_shape[2] - m, dtype, backward, device, repeats))
    return total, extra
