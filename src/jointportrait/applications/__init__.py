"""Applications of the joint model (paper Sec. 4, 5.3, 5.4; Suppl. 8.2).

Each task is one call of :class:`~jointportrait.pipelines.JointPortraitPipeline`
with its own choice of known domains and masks (1 = generate), wrapped with the
pre- and post-processing the task needs:

=====================  =====================  ============================================
task                   masks (rgb, depth)     module
=====================  =====================  ============================================
depth estimation       (0, 1)                 :mod:`.depth_estimation` (+ :mod:`.ensemble`)
depth-to-image         (1, 0)                 :mod:`.depth_to_image`
depth-based editing    (spatial, 0)           :mod:`.editing`
joint generation       (1, 1)                 the pipeline itself (``jointportrait generate``)
animation (Sec. 5.5)   (1, 0) on every frame  :mod:`.animation` (the video pipeline; not imported here:
                                              it pulls in the tracker's renderer)
=====================  =====================  ============================================

An 18-channel (stage-2) model reads the masks as input; an 8-channel model is
steered training-free by latent replacement (the baseline). Relighting: :mod:`.relight`
(normals from :mod:`jointportrait.geometry.normals`, shading from :mod:`jointportrait.appearance.shading`);
point clouds and meshes: :mod:`jointportrait.geometry.export`; sizes: :mod:`.resolution`.
"""

from jointportrait.applications.depth_estimation import DepthEstimate, estimate_depth
from jointportrait.applications.depth_to_image import depth_to_image
from jointportrait.applications.editing import EditResult, edit_with_depth, mask_from_depth_edit

__all__ = ["DepthEstimate", "EditResult", "depth_to_image", "edit_with_depth", "estimate_depth", "mask_from_depth_edit"]
