"""``jointportrait landmarks``: the face detector alone: 68-point landmarks of a photo, a folder of photos or
a video, as ``.npy`` ``(F, 68, 2)`` (NaN where there is no face) or ``.json`` (paper Sec. 5.1).

The output feeds ``jointportrait track --landmarks`` unchanged. Photos are
searched one by one; a video's face is followed from frame to frame and its
track smoothed (as ``track`` does). Needs the ``faces`` extra.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jointportrait.cli.detection import add_detection_arguments, clip_landmarks, frames_list, no_face_message


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", type=Path, help="video file or folder of .png/.jpg frames (one clip)")
    source.add_argument("--image", type=Path, help="photo, or a folder of photos (each searched on its own)")
    parser.add_argument("--out", type=Path, required=True, help="landmarks file to write: .npy or .json")
    add_detection_arguments(parser)
    parser.add_argument("--preview", type=Path, default=None,
                        help="also draw the landmarks: a .png of the first image, or an .mp4 of the video")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


def _draw(image, landmarks, box=None):
    import cv2
    import numpy as np

    canvas = np.ascontiguousarray(image.copy())
    radius = max(1, round(max(image.shape[:2]) / 250))
    if box is not None and np.isfinite(box).all():
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), (255, 200, 0), max(1, radius // 2))
    for x, y in landmarks:
        if np.isfinite(x) and np.isfinite(y):
            cv2.circle(canvas, (int(round(x)), int(round(y))), radius, (0, 255, 0), -1, lineType=cv2.LINE_AA)
    return canvas


def _image_landmarks(args: argparse.Namespace):
    """Landmarks of each photo of ``--image`` (a :class:`ClipLandmarks`) and the photos."""
    import numpy as np
    from tqdm import tqdm

    from jointportrait.cli.face_crop import face_detector
    from jointportrait.cli.inputs import collect_files
    from jointportrait.faces import select_face
    from jointportrait.io import load_image
    from jointportrait.tracking.landmarks import ClipLandmarks

    files = collect_files(args.image)
    detector = face_detector(args.detector)
    images, faces, counts = [], [], []
    for path in tqdm(files, desc="detecting faces", unit="image", disable=len(files) < 2):
        image = np.asarray(load_image(path))
        found = detector.detect(image)
        if len(found) > 1:
            print(f"{path}: {len(found)} faces found; using index {args.face_index} "
                  f"({'the largest' if args.face_index == 0 else 'by size, largest first'})")
        if len(files) == 1:
            faces.append(select_face(found, args.face_index, where=str(path)))  # one photo: no face is an error
        else:
            faces.append(found[args.face_index] if len(found) > args.face_index else None)
        images.append(image)
        counts.append(len(found))
    landmarks = np.stack([f.landmarks if f else np.full((68, 2), np.nan, np.float32) for f in faces])
    boxes = np.stack([np.asarray(f.box, np.float32) if f else np.full(4, np.nan, np.float32) for f in faces])
    scores = np.array([f.score if f else np.nan for f in faces], np.float32)
    found = np.array([f is not None for f in faces])
    return ClipLandmarks(landmarks, found, boxes, scores, counts), images, files


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from jointportrait.errors import InputError
    from jointportrait.faces import NoFaceError
    from jointportrait.io import check_writable, save_image
    from jointportrait.tracking.landmarks import save_landmarks
    from jointportrait.tracking.video import read_frames, write_video

    if args.out.suffix.lower() not in (".npy", ".json"):
        raise InputError(f"--out must end in .npy or .json, got {args.out.name!r}")
    if args.face_index < 0:
        raise InputError(f"--face-index must be >= 0, got {args.face_index}")
    if args.preview is not None and args.preview.suffix.lower() not in ((".mp4",) if args.video else (".png",)):
        raise InputError(f"--preview must be {'an .mp4' if args.video else 'a .png'} file, got {args.preview.name!r}")
    check_writable(args.out, args.overwrite)
    if args.preview is not None:
        check_writable(args.preview, args.overwrite)
    if args.video is not None:
        frames, fps = read_frames(args.video)
        clip = clip_landmarks(args, frames, fps)
        where, info = args.video, {"video": str(args.video), "fps": fps}
    else:
        clip, frames, files = _image_landmarks(args)
        where, info = args.image, {"images": [str(f) for f in files]}
    if not clip.found.any():
        raise NoFaceError(no_face_message(where, clip, "frames" if args.video else "images", args.face_index))
    if clip.missing:
        print(f"no face in {len(clip.missing)} of {len(clip.found)} {'frames' if args.video else 'images'}: "
              f"{frames_list(clip.missing)} (NaN rows in the output)")
    save_landmarks(args.out, clip, overwrite=args.overwrite, detector=f"dlib {args.detector}",
                   smoothing=bool(args.video) and not args.no_smoothing, **info)
    if args.preview is not None:
        boxes = clip.boxes if clip.boxes is not None else np.full((len(clip.found), 4), np.nan)
        if args.video is not None:
            drawn = np.stack([_draw(f, lm, b) for f, lm, b in zip(frames, clip.landmarks, boxes)])
            write_video(check_writable(args.preview, args.overwrite), drawn, fps)
        else:
            first = int(np.argmax(clip.found))
            save_image(args.preview, _draw(frames[first], clip.landmarks[first], boxes[first]), args.overwrite)
    print(f"wrote landmarks of {int(clip.found.sum())} of {len(clip.found)} "
          f"{'frames' if args.video else 'images'} to {args.out}")
    return 0
