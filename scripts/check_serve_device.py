"""Device check of the web demo: every handler on ``--device`` against the CPU, then the real server there.

1. Runs each tab's handler (depth with an ensemble, relighting, editing, generation) on the tiny
   random model on the CPU in float32 and on ``--device`` in float32 and in ``--dtype``, and prints
   the largest differences from the CPU and the times.
2. Starts ``jointportrait serve --tiny --device DEVICE --dtype DTYPE`` in a subprocess, calls the five
   API endpoints and a bad upload through ``gradio_client``, stops it with SIGTERM and checks that
   its temporary folder is gone.

    python scripts/check_serve_device.py --device cuda --dtype bfloat16

Needs the ``[serve]`` extra; run from the repository root (it reads ``tests/serve/serve_photos.py``).
Exit status 1 when a step fails.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from gradio_client import Client, handle_file
from PIL import Image

from jointportrait.serve import handlers
from jointportrait.serve.context import ServeContext, load_serve_pipeline
from jointportrait.serve.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "serve"))
from serve_photos import portrait_like  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def run_tabs(device: str, dtype: torch.dtype, photo: Path, layer: Path) -> dict:
    """Every handler once on the tiny model; arrays and seconds."""
    with Workspace() as workspace:
        ctx = ServeContext(load_serve_pipeline(None, True, torch.device(device), dtype), workspace, tiny=True)
        out = {}
        start = time.perf_counter()
        out["depth"] = handlers.depth_tab(ctx, photo, steps=10, ensemble=3, resolution=128, seed=1).depth
        out["t_depth"] = time.perf_counter() - start
        source, _ = handlers.relight_source(ctx, photo, steps=4, seed=1)
        out["relit"] = handlers.relight_tab(source, 40, 10, 1.2, 0.2, "ratio")[0].astype(int)
        start = time.perf_counter()
        out["edit"] = handlers.edit_tab(ctx, photo, [layer], -0.2, steps=10, seed=2).image.astype(int)
        out["t_edit"] = time.perf_counter() - start
        start = time.perf_counter()
        out["generate"] = handlers.generate_tab(ctx, photo, num_samples=3, steps=10, seed=3).images[0].astype(int)
        out["t_generate"] = time.perf_counter() - start
    return out


def check_server(device: str, dtype: str, photo: Path, layer: Path, tmp: Path) -> bool:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server_tmp = tmp / "server_tmp"
    server_tmp.mkdir()
    log_path = tmp / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jointportrait.cli.main", "serve", "--tiny", "--device", device, "--dtype", dtype,
             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TMPDIR": str(server_tmp)})
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(600):
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        client = Client(url, verbose=False, download_files=str(tmp / "downloads"))
        print("endpoints", sorted(client.view_api(print_info=False, return_format="dict")["named_endpoints"]))
        grey, *_, files = client.predict(handle_file(str(photo)), 10, 2, 128, "mesh", 0, api_name="/estimate_depth")
        print("/estimate_depth", np.asarray(Image.open(grey)).shape, [Path(f).name for f in files])
        client.predict(handle_file(str(photo)), 4, 0, api_name="/relight_prepare")
        relit, _ = client.predict(-40, 20, 1.0, 0.3, "multiply", api_name="/relight")
        print("/relight", np.asarray(Image.open(relit)).shape)
        editor = {"background": handle_file(str(photo)), "layers": [handle_file(str(layer))], "composite": None}
        edited = client.predict(editor, -0.2, 8, 0, api_name="/edit")[0]
        print("/edit", np.asarray(Image.open(edited)).shape)
        print("/generate", len(client.predict(handle_file(str(photo)), 2, 8, 1.0, 0, api_name="/generate")[0]),
              "samples")
        (tmp / "bad.png").write_text("not an image")
        try:
            client.predict(handle_file(str(tmp / "bad.png")), 2, 1, 64, "mesh", 0, api_name="/estimate_depth")
            print("a text file was accepted")
            return False
        except Exception as exc:  # gradio_client's AppError carries the page's message
            print("bad upload ->", exc)
    finally:
        proc.send_signal(signal.SIGTERM)
        returncode = proc.wait(timeout=60)
    left = list(server_tmp.glob("jointportrait-serve-*"))
    print("server exit", returncode, "temporary folders left:", left)
    if returncode != 0:
        print(log_path.read_text()[-3000:])
    return returncode == 0 and not left


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=list(DTYPES))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    photo, layer = tmp / "photo.png", tmp / "layer.png"
    Image.fromarray(portrait_like(192, 160)).save(photo)
    painted = np.zeros((192, 160, 4), np.uint8)
    painted[60:120, 40:100] = 255
    Image.fromarray(painted).save(layer)

    cpu = run_tabs("cpu", torch.float32, photo, layer)
    print(f"cpu float32: depth {cpu['t_depth']:.2f} s, edit {cpu['t_edit']:.2f} s, generate {cpu['t_generate']:.2f} s")
    for dtype in dict.fromkeys(["float32", args.dtype]):
        run = run_tabs(args.device, DTYPES[dtype], photo, layer)
        print(f"{args.device} {dtype}: depth max|diff| {np.abs(run['depth'] - cpu['depth']).max():.4g}, "
              f"relit max|diff| {np.abs(run['relit'] - cpu['relit']).max()}, "
              f"edit mean|diff| {np.abs(run['edit'] - cpu['edit']).mean():.3f}, "
              f"generate mean|diff| {np.abs(run['generate'] - cpu['generate']).mean():.3f} (8-bit levels); "
              f"depth {run['t_depth']:.2f} s, edit {run['t_edit']:.2f} s, generate {run['t_generate']:.2f} s")
    return 0 if check_server(args.device, args.dtype, photo, layer, tmp) else 1


if __name__ == "__main__":
    sys.exit(main())
