"""``jointportrait serve``: its options and its one-line errors (the page itself: test_serve_browser.py)."""

from __future__ import annotations

import socket
import sys
import tempfile

import pytest

from jointportrait.cli.main import main


def run_error(capsys, *argv: str) -> str:
    assert main(["serve", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err.strip()


def test_help_says_what_0000_exposes(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "0.0.0.0 lets anyone who can reach this machine use the model and upload files" in text
    assert "--tiny" in text and "outputs are noise" in text


def test_missing_extra_is_one_line_naming_it(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # as if the [serve] extra were not installed
    assert "needs the optional [serve] extra (Gradio): pip install -e '.[serve]'" in run_error(capsys, "--tiny")


@pytest.mark.parametrize(("argv", "message"), [
    (["--tiny", "--port", "0"], "--port must be in 1..65535, got 0"),
    (["--tiny", "--max-queue", "0"], "--max-queue must be >= 1, got 0"),
    (["--tiny", "--max-upload-mb", "-1"], "--max-upload-mb must be positive, got -1.0"),
    (["--tiny", "--device", "cuda"], "--device: CUDA was asked for but no GPU is available"),
    (["--model", "no/such/model"], "no/such/model: no such folder"),
    (["--model", "no/such/model", "--video"], "--video goes with --tiny (a model folder with motion_adapter/ is a "
                                              "video model already)"),
])
def test_bad_options_are_one_line_and_leave_no_files(capsys, monkeypatch, tmp_path, argv, message):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert message in run_error(capsys, *argv)
    assert list(tmp_path.glob("jointportrait-serve-*")) == []


@pytest.mark.parametrize("source", ["tiny", "folder"])
def test_busy_port_is_one_line(capsys, monkeypatch, tmp_path, tiny_model_dir, source):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))  # restored afterwards
    model = ["--tiny"] if source == "tiny" else ["--model", str(tiny_model_dir)]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert f"cannot listen on 127.0.0.1:{port}" in run_error(capsys, *model, "--port", str(port))
    assert list(tmp_path.glob("jointportrait-serve-*")) == []
    with pytest.raises(SystemExit):
        main(["serve", "--tiny", "--model", "x"])  # one model source only
