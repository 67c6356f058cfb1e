"""Training: one accelerate trainer for the stages of the paper (Sec. 3.2, 4, 5.1; supplementary 7.2)."""

from jointportrait.training.config import RunConfig, load_config
from jointportrait.training.trainer import TrainResult, train

__all__ = ["RunConfig", "TrainResult", "load_config", "train"]
