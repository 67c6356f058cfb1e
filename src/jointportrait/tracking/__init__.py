"""Monocular face tracking for in-the-wild video: pseudo ground-truth depth (paper Sec. 5.1, suppl. 7.3)."""

from jointportrait.tracking.landmarks import load_landmarks
from jointportrait.tracking.params import TrackParams
from jointportrait.tracking.stages import TrackerConfig
from jointportrait.tracking.tracker import TrackResult, track_clip

__all__ = ["TrackParams", "TrackResult", "TrackerConfig", "load_landmarks", "track_clip"]
