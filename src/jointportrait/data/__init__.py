"""Data: face models, synthetic studio data, manifests and training datasets (paper Sec. 5.1)."""
