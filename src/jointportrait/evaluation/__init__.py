"""Evaluation: the metrics of the paper's Tables 1-3 (Sec. 5.2, 5.3, 5.5) and folder-level runs.

Metrics are pure functions with their formulas in the docstrings
(docs/EVALUATION.md collects the conventions). Backbones that need published
weights (LPIPS, InceptionV3 for FID, I3D for FVD, HyperIQA for image quality,
ArcFace through ONNX) are defined in this package and load those weights from
local files; :mod:`~jointportrait.evaluation.video_evaluation` runs Table 3.
"""

from jointportrait.evaluation.depth_metrics import align_prediction, depth_metrics
from jointportrait.evaluation.fid import feature_statistics, frechet_distance, frechet_distance_from_features
from jointportrait.evaluation.image_metrics import image_metrics, l1_error
from jointportrait.evaluation.normal_metrics import normal_metrics
from jointportrait.evaluation.ssim import ssim

__all__ = [
    "align_prediction",
    "depth_metrics",
    "feature_statistics",
    "frechet_distance",
    "frechet_distance_from_features",
    "image_metrics",
    "l1_error",
    "normal_metrics",
    "ssim",
]
