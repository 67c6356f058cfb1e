"""Pack a base run's export as the shipped base (fp16 safetensors) and draw its sample sheet.

    python scripts/pack_base.py RUN_DIR/final OUT_DIR [--vae VAE_RUN] [--provenance JSON] [--sheet PNG]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jointportrait.reproduce.base_model import pack_base, sample_sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("final", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--vae", type=Path, default=None, help="replace the VAE (a VAE-stage run or folder)")
    parser.add_argument("--provenance", type=Path, default=None, help="JSON file recorded as provenance.json")
    parser.add_argument("--sheet", type=Path, default=None, help="write a 4 x 8 sample sheet here")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    provenance = json.loads(args.provenance.read_text()) if args.provenance else None
    out = pack_base(args.final, args.out, provenance=provenance, vae=args.vae)
    if args.sheet is not None:
        sample_sheet(out, args.sheet, device=args.device)
    print(out)


if __name__ == "__main__":
    main()
