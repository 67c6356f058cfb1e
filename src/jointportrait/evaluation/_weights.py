"""Loading metric backbone weights from a local file (``.safetensors``, ``.pt``/``.pth``)."""

from __future__ import annotations

from pathlib import Path

import torch

from jointportrait.errors import InputError, MissingPathError


def load_state_dict_file(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """The tensors in ``path``; a missing or unreadable file is a one-line error naming ``what`` was expected."""
    path = Path(path)
    if not path.is_file():
        raise MissingPathError(f"{path}: no such file; expected {what}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any reader failure means a bad user file
        raise InputError(f"{path}: not a readable weights file ({str(exc).splitlines()[0]}); expected {what}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise InputError(f"{path}: holds no state dict of tensors; expected {what}")
    return state


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path, what: str,
              ignore_prefixes: tuple[str, ...] = ()) -> None:
    """Strictly load ``state`` (minus keys under ``ignore_prefixes``) into ``module``; mismatches name the file."""
    # BatchNorm's num_batches_tracked counter is absent from older checkpoints and unused in eval mode.
    state = {k: v for k, v in state.items()
             if not k.startswith(ignore_prefixes) and not k.endswith("num_batches_tracked")}
    expected = {k: v for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise InputError(f"{path}: keys do not match {what} ({detail}, ...)")
    bad = [k for k in expected if tuple(state[k].shape) != tuple(expected[k].shape)]
    if bad:
        raise InputError(f"{path}: {bad[0]} has shape {tuple(state[bad[0]].shape)}, "
                         f"expected {tuple(expected[bad[0]].shape)} for {what}")
    module.load_state_dict(state, strict=False)  # complete up to num_batches_tracked (checked above)
