"""Fixtures of the web-demo tests: a server context on the tiny model, photos, bad uploads."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from serve_photos import portrait_like


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(portrait_like()).save(path)
    return path


@pytest.fixture
def text_as_png(tmp_path) -> Path:
    path = tmp_path / "notes.png"
    path.write_text("these are meeting notes, not a picture\n" * 20)
    return path


@pytest.fixture(scope="module")
def serve_ctx(tiny_model_dir):
    """A server context on the saved tiny model (the folder the CLI tests also use)."""
    from jointportrait.loading import load_joint_pipeline
    from jointportrait.serve.context import ServeContext
    from jointportrait.serve.workspace import Workspace

    workspace = Workspace()
    yield ServeContext(load_joint_pipeline(tiny_model_dir), workspace, tiny=True, model_name="tiny")
    workspace.close()
