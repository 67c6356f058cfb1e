"""``jointportrait demo``: the whole method on one machine, from synthetic data to the paper's tables."""

from jointportrait.demo.runner import DemoConfig, DemoResult, run_demo

__all__ = ["DemoConfig", "DemoResult", "run_demo"]
