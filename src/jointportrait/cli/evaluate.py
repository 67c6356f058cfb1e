"""``jointportrait evaluate depth|image|video``: the paper's Tables 1-3 over folders (Sec. 5.2, 5.3, 5.5).

Writes the per-item metrics, their means and notes as JSON (``--out``) and
prints a Markdown table laid out like the paper's. Metrics that need published
weights (LPIPS, FID, FVD, ID similarity) run only when their weights are given
and are otherwise omitted with a note.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jointportrait.cli.detection import add_detection_arguments
from jointportrait.cli.options import add_face_model_argument, parse_device
from jointportrait.errors import InputError

TASKS = ("depth", "image", "video")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", choices=TASKS, help="depth (Table 1), image (Table 2) or video (Table 3)")
    parser.add_argument("--pred", type=Path, required=True, help="folder of predictions (clip folders for video)")
    parser.add_argument("--gt", type=Path, default=None,
                        help="folder of ground truth, matched by name (required for depth and image; video: the "
                             "ground-truth clips of self reenactment)")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--method", default=None, help="row name in the printed table (default: --pred's name)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--device", default="cpu", help="torch device for the metric networks (cpu, cuda, ...)")
    depth = parser.add_argument_group("depth")
    depth.add_argument("--mask", type=Path, default=None, help="folder of evaluation masks <name>.png (skin region)")
    depth.add_argument("--alignment", choices=("depth", "disparity", "none"), default="depth",
                       help="least-squares scale/shift alignment: depth space (Marigold's evaluation, default), "
                            "disparity space (MiDaS's) or none")
    depth.add_argument("--gt-normalization", choices=("none", "minmax"), default="none",
                       help="ground truth as given (default) or min-max normalised to [0, 1] inside the mask "
                            "(the scale of the paper's Table 1; docs/EVALUATION.md)")
    depth.add_argument("--pred-kind", choices=("depth", "disparity"), default="depth",
                       help="what the predictions hold (disparity needs --alignment disparity)")
    depth.add_argument("--no-normals", action="store_true", help="skip the normal angular errors")
    weights = parser.add_argument_group("weights (local files; metrics without them are omitted)")
    weights.add_argument("--lpips-weights", type=Path, default=None, help="LPIPS state dict (lpips package layout)")
    weights.add_argument("--lpips-net", choices=("alex", "vgg"), default="alex", help="LPIPS backbone")
    weights.add_argument("--lpips-backbone", type=Path, default=None,
                         help="torchvision ImageNet weights of --lpips-net, when --lpips-weights holds the linear "
                              "layers only (the lpips package's weights/v0.1/<net>.pth)")
    weights.add_argument("--inception-weights", type=Path, default=None,
                         help="FID InceptionV3: pytorch-fid's .pth or the TorchScript inception-2015-12-05.pt")
    weights.add_argument("--i3d-weights", type=Path, default=None, help="pytorch-i3d weights (FVD)")
    weights.add_argument("--identity-model", type=Path, default=None,
                         help="ArcFace ONNX model (ID similarity; faces aligned by landmarks with the faces extra)")
    weights.add_argument("--face-descriptor", action="store_true",
                         help="video: also ID similarity with dlib's 128-d face descriptor (the faces extra; no "
                              "weights to give)")
    weights.add_argument("--iqa-weights", type=Path, default=None,
                         help="video: HyperIQA weights in the authors' layout (koniq_pretrained.pkl): image quality")
    video = parser.add_argument_group("video (Table 3)")
    video.add_argument("--reference", type=Path, default=None,
                       help="folder of identity reference images <clip>.png (default: ground-truth frames)")
    video.add_argument("--driving", type=Path, default=None,
                       help="folder of driving clips (frames), matched by name: expression and pose error of "
                            "cross reenactment (the faces extra)")
    video.add_argument("--fvd-window", type=int, default=None,
                       help="FVD: frames per non-overlapping window (default 16)")
    video.add_argument("--iqa-crops", type=int, default=None,
                       help="image quality: fixed 224 px crops per frame (default 10, as the authors' demo)")
    video.add_argument("--clip-length", type=int, default=None,
                       help="seam score of frame folders: a new generated clip starts every N frames (animate "
                            "output folders carry their clip starts in run.json)")
    add_face_model_argument(video)
    video.add_argument("--no-photometric", action="store_true",
                       help="expression/pose: fit landmarks only (faster; default: the full tracker of track)")
    add_detection_arguments(video)


# video-only options and their defaults: any other value is an error for depth and image
VIDEO_ONLY = {"reference": None, "driving": None, "face_descriptor": False, "iqa_weights": None,
              "fvd_window": None, "iqa_crops": None,
              "clip_length": None, "face_model": None, "no_photometric": False, "face_index": 0, "detector": "hog",
              "no_smoothing": False}


def _video_options(args: argparse.Namespace, device):
    from jointportrait.evaluation.video_evaluation import VideoEvaluationOptions
    from jointportrait.tracking.stages import TrackerConfig

    defaults = {k: v for k, v in (("fvd_window", args.fvd_window), ("iqa_crops", args.iqa_crops)) if v is not None}
    return VideoEvaluationOptions(
        lpips_weights=args.lpips_weights, lpips_net=args.lpips_net, lpips_backbone=args.lpips_backbone,
        i3d_weights=args.i3d_weights, identity_model=args.identity_model, face_descriptor=args.face_descriptor,
        iqa_weights=args.iqa_weights, clip_length=args.clip_length, face_model=args.face_model,
        tracker=TrackerConfig(photometric=not args.no_photometric), detector=args.detector,
        face_index=args.face_index, smoothing=not args.no_smoothing, device=device, progress=True, **defaults)


def run(args: argparse.Namespace) -> int:
    from jointportrait.evaluation import runner
    from jointportrait.evaluation.tables import METRIC_NAMES, markdown_table
    from jointportrait.io import check_writable

    out = check_writable(args.out, args.overwrite)
    device = parse_device(args.device)
    if args.task != "depth" and args.mask is not None:
        raise InputError("--mask applies to depth evaluation only")
    if args.task != "video":
        for dest, default in VIDEO_ONLY.items():
            if getattr(args, dest) != default:
                raise InputError(f"--{dest.replace('_', '-')} applies to video evaluation only")
        if args.gt is None:
            raise InputError(f"--gt is required for {args.task} evaluation")
    if args.pred_kind == "disparity" and args.alignment != "disparity":
        raise InputError("--pred-kind disparity needs --alignment disparity")
    if args.task == "depth":
        result = runner.evaluate_depth(args.pred, args.gt, args.mask, alignment=args.alignment,
                                       pred_kind=args.pred_kind, normals=not args.no_normals, progress=True,
                                       gt_normalization=args.gt_normalization)
    elif args.task == "image":
        result = runner.evaluate_image(args.pred, args.gt, args.lpips_weights, args.lpips_net,
                                       args.inception_weights, device=device, progress=True,
                                       lpips_backbone=args.lpips_backbone)
    else:
        from jointportrait.evaluation.video_evaluation import evaluate_video

        result = evaluate_video(args.pred, args.gt, args.driving, args.reference, _video_options(args, device))
    method = args.method or args.pred.resolve().name
    report = {"method": method, "pred": str(args.pred), "gt": str(args.gt) if args.gt else None, **result.to_json()}
    if args.task == "video":
        report.update(driving=str(args.driving) if args.driving else None,
                      reference=str(args.reference) if args.reference else None)
    if args.task == "depth":
        report.update(alignment=args.alignment, pred_kind=args.pred_kind, gt_normalization=args.gt_normalization,
                      mask=str(args.mask) if args.mask else None)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown_table(args.task, [(method, result.mean)], result.labels))
    for key, why in result.omitted.items():
        print(f"- {METRIC_NAMES.get(key, key)} omitted: {why}")
    for note in result.notes:
        print(f"- {note}")
    print(f"{len(result.rows)} item(s); per-item metrics in {out}")
    return 0
