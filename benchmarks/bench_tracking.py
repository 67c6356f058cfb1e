"""Face tracker speed and accuracy on a synthetic clip (paper Sec. 5.1, supplementary 7.3).

A 25-frame 256x256 clip from the synthetic video generator (``jointportrait
synth --video``, the packaged ICT face model) with landmarks = projected
landmark vertices + 1.5 px Gaussian noise. Reports seconds per frame of the
full tracker and its ablations (no photometric stage; one identity per frame),
the aligned AbsRel of the tracked depth over the true skin mask and the
landmark error against the noise-free landmarks.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.report import update_section
from jointportrait.data.synth import SynthConfig, write_dataset
from jointportrait.face_models import load_face_model
from jointportrait.tracking import TrackerConfig, track_clip
from jointportrait.tracking.evaluation import evaluate_track, load_synthetic_clip

FRAMES, SIZE, NOISE_PX, SEED = 25, 256, 1.5, 0


def main() -> None:
    model = load_face_model()
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(Path(tmp), model, SynthConfig(subjects=1, frames_per_subject=FRAMES, size=SIZE, video=True,
                                                    clip_length=FRAMES, seed=SEED))
        clip = load_synthetic_clip(tmp, model, noise_px=NOISE_PX, seed=SEED)
    rows = []
    for name, config in (("full tracker", TrackerConfig()), ("no photometric stage", TrackerConfig(photometric=False)),
                         ("one identity per frame", TrackerConfig(shared_identity=False))):
        start = time.perf_counter()
        result = track_clip(model, clip.frames, clip.landmarks, config)
        seconds = time.perf_counter() - start
        abs_rel, lmk = evaluate_track(clip, result)
        rows.append((name, seconds, abs_rel, lmk, result.diverged))
        print(f"{name}: {seconds / FRAMES:.2f} s/frame, AbsRel {abs_rel:.4f}, landmark error {lmk:.2f} px")
    base = rows[0][1]
    table = "\n".join(f"| {n} | {s / FRAMES:.2f} | {s / base:.2f} | {a:.4f} | {e:.2f} | {d or 'no'} |"
                      for n, s, a, e, d in rows)
    update_section("tracking", f"""## Face tracking (`jointportrait track`)

{FRAMES}-frame {SIZE}x{SIZE} clip from the synthetic video generator ({model.name}), landmarks with
{NOISE_PX} px Gaussian noise. AbsRel: tracked depth vs. true depth after a least-squares scale and shift,
over the true skin mask; landmark error: fitted vs. noise-free landmarks.

| variant | s / frame | time vs. full | aligned AbsRel | landmark error (px) | diverged |
| --- | --- | --- | --- | --- | --- |
{table}
""")


if __name__ == "__main__":
    main()
