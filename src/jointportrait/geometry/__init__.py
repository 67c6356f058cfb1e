"""Geometry: cameras, normals from depth and depth -> 3-D files (paper Sec. 5.1, Suppl. 8.2).

A low layer used by the renderer (:mod:`jointportrait.render`), the synthetic studio data
(:mod:`jointportrait.data.synth`), the face tracker (:mod:`jointportrait.tracking`), the
metrics (:mod:`jointportrait.evaluation`) and the applications; it imports nothing else of
the project.

- :mod:`.cameras`: the one camera construction (focal length from a field of view,
  intrinsics, extrinsics), projection and back-projection, and the batched camera types of
  the rasteriser;
- :mod:`.normals`: surface normals of a depth map;
- :mod:`.export`: a depth map as a coloured point cloud or triangle mesh (PLY, OBJ, GLB).
"""
