"""TEST FIXTURE: a small in-memory dataset yielding dataset-contract-shaped dicts (not the real data loader).

Synthetic "heads": an ellipse with a subject colour and shading over a flat
background; depth is an ellipsoid cap (larger = farther), invalid off the head.
The reference of a sample is another frame (shifted head) of the same subject.
Also a command-line entry point that runs the trainer on it (for the
subprocess tests: kill -9 + resume, 2-process DDP).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from jointportrait.depth_codec import normalize_depth


def _frame(subject: int, frame: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 * subject + frame)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    cx, cy = (torch.rand(2, generator=g) - 0.5) * 0.3
    ax, ay = 0.45 + 0.05 * subject % 3, 0.6
    r2 = ((xs - cx) / ax) ** 2 + ((ys - cy) / ay) ** 2
    valid = r2 < 1.0  # (H, W)
    depth = torch.where(valid, 2.0 - 0.3 * torch.sqrt((1.0 - r2).clamp_min(0)), torch.zeros_like(r2))
    colour = torch.tensor([[0.8, 0.5, 0.3], [0.5, 0.7, 0.4], [0.3, 0.4, 0.8]])[subject % 3]
    shade = (1.0 - 0.5 * r2.clamp(0, 1)) * (0.8 + 0.2 * xs)
    head = colour[:, None, None] * shade  # (3, H, W)
    image = torch.where(valid, head, torch.full_like(head, 0.2)) * 2 - 1  # [-1, 1]
    return image.clamp(-1, 1), depth[None], valid[None].float()


class ContractDataset(torch.utils.data.Dataset):
    """``num_subjects`` x ``frames`` items with the keys of the dataset contract."""

    def __init__(self, size: int = 64, num_subjects: int = 3, frames: int = 4) -> None:
        self.size, self.num_subjects, self.frames = size, num_subjects, frames

    def __len__(self) -> int:
        return self.num_subjects * self.frames

    def __getitem__(self, index: int) -> dict:
        subject, frame = divmod(index, self.frames)
        image, depth_raw, valid = _frame(subject, frame, self.size)
        reference, _, _ = _frame(subject, (frame + 1) % self.frames, self.size)
        return {"image": image, "depth": normalize_depth(depth_raw[None], valid[None])[0], "valid": valid,
                "skin_mask": torch.ones_like(valid), "reference": reference, "depth_raw": depth_raw,
                "subject": f"s{subject:04d}", "index": index}


def main(argv: list[str] | None = None) -> int:
    """``python train_fixture_data.py --config F --output-dir D [--resume latest] [--set k=v] [--rank-weights]``."""
    from jointportrait.cli.train import add_arguments, resolve_run
    from jointportrait.training.trainer import train

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    parser.add_argument("--rank-weights", action="store_true", help="save each rank's final weights")
    args = parser.parse_args(argv)
    cfg, checkpoint = resolve_run(args)
    dataset = ContractDataset(size=cfg.data.resolution)
    result = train(cfg, args.output_dir, resume_from=checkpoint, dataset=dataset, val_dataset=dataset)
    if args.rank_weights:
        rank = int(os.environ.get("RANK", "0"))  # set by the launcher; the process group is gone by now
        weights = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
        torch.save({"world_size": result.world_size, "weights": weights}, Path(args.output_dir) / f"rank{rank}.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
