"""The --out guard every command shares (generator/run_folder.py), on real folders.

--overwrite removes only what synth wrote: a user's file in a dataset's images/, in a report
folder or in an anomaly folder is still there afterwards; a different run and a file as --out are
refused in one line.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

from synth import UserError
from synth.generator.dataset import Dataset, DatasetError, DatasetWriter, frame_id
from synth.generator.run_folder import RunFolder


def _cli(*args):
    from typer.testing import CliRunner

    from synth.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _dataset(root, config, n=2, size=8):
    w = DatasetWriter(root, config=config, class_names=["normal", "lesion"], overwrite=True)
    for i in range(n):
        w.write_frame(frame_id(i), image=np.full((size, size, 3), 40 * i, np.uint8),
                      label=("normal", "lesion")[i % 2], mask=np.zeros((size, size), np.uint8))
    w.finalize(manifest={"command": "test"})
    return root


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _one_line(err: Exception) -> str:
    text = str(err)
    assert "\n" not in text
    return text


# --------------------------------------------------------------------------- datasets


def test_overwrite_of_a_dataset_keeps_the_users_files(tmp_path, capsys):
    root = _dataset(tmp_path / "d", {"run": 1})
    (root / "images" / "notes.txt").write_text("mine")
    (root / "images" / "my_photo.jpg").write_bytes(b"\xff\xd8 a photo")
    (root / "images" / "000000.jpg").write_text("a frame id, but synth writes .png")
    (root / "images" / ".000001.png.k2j4.tmp").write_bytes(b"half a frame")  # a killed run's temporary
    (root / "README.txt").write_text("about this folder")

    DatasetWriter(root, config={"run": 2}, class_names=["normal", "lesion"], overwrite=True)

    assert _files(root) == ["README.txt", "config.json", "images/000000.jpg", "images/my_photo.jpg",
                            "images/notes.txt"]
    assert (root / "images" / "notes.txt").read_text() == "mine"
    assert json.loads((root / "config.json").read_text()) == {"run": 2}
    assert all((root / sub).is_dir() for sub in DatasetWriter.SUBDIRS)  # ready for the new frames
    assert "kept 4 file(s)" in capsys.readouterr().out


def _class_folders(src):
    """Two class folders of two 8x8 PNGs each, for `synth data import`."""
    import cv2

    for k, name in enumerate(("normal", "lesion")):
        (src / name).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(src / name / f"{i}.png"), np.full((8, 8, 3), 50 * k + i, np.uint8))
    return src


def test_data_import_overwrite_keeps_a_file_in_images(tmp_path):
    src = _class_folders(tmp_path / "src")
    out = tmp_path / "ds"
    res = _cli("data", "import", src, "--out", out)
    assert res.exit_code == 0, res.output
    (out / "images" / "notes.txt").write_text("mine")

    res = _cli("data", "import", src, "--out", out, "--resolution", "4")
    assert res.exit_code == 2 and "different run" in res.output and "resolution" in res.output
    res = _cli("data", "import", src, "--out", out, "--resolution", "4", "--overwrite")
    assert res.exit_code == 0, res.output

    assert (out / "images" / "notes.txt").read_text() == "mine"
    ds = Dataset.open(out)
    assert len(ds) == 4 and ds.image(ds.records[0]).shape == (4, 4, 3)


def test_a_different_run_is_refused_in_one_line_and_kept(tmp_path):
    root = _dataset(tmp_path / "d", {"seed": 1, "n": 2})
    before = _files(root)
    with pytest.raises(DatasetError) as e:
        DatasetWriter(root, config={"seed": 2, "n": 2}, class_names=["normal", "lesion"])
    line = _one_line(e.value)
    assert "different run" in line and "seed" in line and "n," not in line and "--overwrite" in line
    assert _files(root) == before


def test_a_file_as_out_is_refused_and_left_alone(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DatasetError, match="is a file, not a folder"):
        DatasetWriter(blocker, config={}, class_names=["a"])
    with pytest.raises(DatasetError, match="cannot write") as e:
        DatasetWriter(blocker / "sub", config={}, class_names=["a"])
    assert str(blocker) in _one_line(e.value)
    res = _cli("data", "import", _class_folders(tmp_path / "src"), "--out", blocker)
    assert res.exit_code == 2 and "is a file" in res.output and "Traceback" not in res.output
    assert blocker.read_text() == "x"


def test_a_folder_that_is_no_run_is_refused(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "thesis.tex").write_text("precious")
    with pytest.raises(DatasetError) as e:
        DatasetWriter(tmp_path / "d", config={}, class_names=["a"])
    assert "not a synth dataset" in _one_line(e.value)
    assert _files(tmp_path / "d") == ["thesis.tex"]


# --------------------------------------------------------------------------- RunFolder itself


def _report(tmp_path, *files):
    out = tmp_path / "rep"
    out.mkdir()
    for name in files:
        (out / name).write_text(f"old {name}")
    return RunFolder(out, command="synth test", names=("report.json", "report.md", "plot.png"), error=UserError)


def test_staged_output_replaces_only_owned_names_and_marks_completion_last(tmp_path):
    folder = _report(tmp_path, "report.json", "report.md", "plot.png", ".DS_Store")
    folder.refuse_existing(True, foreign_ok=False)  # hidden files are not the user's work
    with folder.staged() as tmp:
        (tmp / "report.md").write_text("new")
        (tmp / "report.json").write_text("{}")
    assert _files(folder.path) == [".DS_Store", "report.json", "report.md"]  # the stale plot went
    assert (folder.path / "report.md").read_text() == "new"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rep.tmp")]


def test_staged_output_that_fails_leaves_the_folder_as_it_was(tmp_path):
    folder = _report(tmp_path, "report.json")
    with pytest.raises(RuntimeError):
        with folder.staged() as tmp:
            (tmp / "report.json").write_text("half")
            raise RuntimeError("the run broke")
    assert (folder.path / "report.json").read_text() == "old report.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


def test_staged_report_with_a_users_file_is_refused_even_with_overwrite(tmp_path):
    folder = _report(tmp_path, "report.json", "mine.txt")
    with pytest.raises(UserError, match="already exists.*--overwrite"):
        folder.refuse_existing(False)
    with pytest.raises(UserError) as e:
        folder.refuse_existing(True, foreign_ok=False)
    assert "did not write (mine.txt)" in _one_line(e.value)
    assert _files(folder.path) == ["mine.txt", "report.json"]


def test_a_file_that_appears_during_a_staged_run_survives_it(tmp_path):
    folder = _report(tmp_path, "report.json")
    with folder.staged() as tmp:
        (folder.path / "mine.txt").write_text("written while the report was being made")
        (tmp / "report.json").write_text("{}")
    assert _files(folder.path) == ["mine.txt", "report.json"]


def test_clear_removes_owned_patterns_and_temporaries_only(tmp_path):
    out = tmp_path / "run"
    for rel in ("config.json", ".loss.csv.tmp", "model/weights.bin", "checkpoints/step-0000001/state.pt",
                "checkpoints/.step-0000002.tmp/state.pt", "checkpoints/mine.txt", "samples/step-0000001.png",
                "notes.md"):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text("x")
    lines = []
    folder = RunFolder(out, names=("config.json", "loss.csv", "model"),
                       folders={"checkpoints": r"step-\d{7}", "samples": r"step-\d{7}\.png"})
    assert folder.clear(lines.append) == ["checkpoints/mine.txt", "notes.md"]
    assert _files(out) == ["checkpoints/mine.txt", "notes.md"]
    assert not (out / "samples").exists()  # left empty, so it went
    assert len(lines) == 1 and "kept 2 file(s)" in lines[0]


def test_parent_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError) as e:
        RunFolder(tmp_path / "file" / "a" / "b").check()
    assert "cannot write" in _one_line(e.value) and "is a file" in str(e.value)


# --------------------------------------------------------------------------- the commands' folders


def test_evaluate_refuses_a_report_folder_holding_a_users_file(tmp_path):
    from synth.classifier.evaluate import EvaluateError, check_out

    (tmp_path / "rep").mkdir()
    (tmp_path / "rep" / "report.json").write_text("{}")
    (tmp_path / "rep" / "mine.txt").write_text("mine")
    with pytest.raises(EvaluateError, match="did not write"):
        check_out(str(tmp_path / "rep"), overwrite=True)
    assert _files(tmp_path / "rep") == ["mine.txt", "report.json"]
    (tmp_path / "f").write_text("x")
    with pytest.raises(EvaluateError, match="is a file"):
        check_out(str(tmp_path / "f"), overwrite=True)


def test_classify_overwrite_keeps_a_users_file(tmp_path):
    pytest.importorskip("torch")
    data = _dataset(tmp_path / "a", {"toy": 1}, n=8, size=16)
    args = ["classify", "--train", f"s={data}", "--test", f"r={data}", "--size", "16", "--epochs", "1",
            "--out", tmp_path / "rep", "--seed", "1"]
    assert _cli(*args).exit_code == 0
    report = (tmp_path / "rep" / "report.json").read_text()
    (tmp_path / "rep" / "mine.txt").write_text("mine")
    res = _cli(*args, "--overwrite")
    assert res.exit_code == 2 and "did not write (mine.txt)" in res.output, res.output
    assert (tmp_path / "rep" / "mine.txt").read_text() == "mine"
    assert (tmp_path / "rep" / "report.json").read_text() == report
    (tmp_path / "rep" / "mine.txt").unlink()
    assert _cli(*args, "--overwrite").exit_code == 0  # its own report it replaces
    assert (tmp_path / "rep" / "report.json").exists()


def test_anomaly_overwrite_keeps_a_users_file(tmp_path):
    pytest.importorskip("torch")
    from synth.diffusion.anomaly import AnomalyError, _prepare_out

    out = tmp_path / "a"
    (out / "heatmaps").mkdir(parents=True)
    for rel in ("heatmaps/000000.png", "heatmaps/mine.png", "scores.csv", "report.json", "notes.txt"):
        (out / rel).write_text("x")
    with pytest.raises(AnomalyError, match="--overwrite"):
        _prepare_out(out, False, print)
    assert len(_files(out)) == 5
    _prepare_out(out, True, lambda _: None)
    assert _files(out) == ["heatmaps/mine.png", "notes.txt"]


def test_training_run_guard(tmp_path):
    pytest.importorskip("torch")
    from synth.diffusion.train import TrainConfig, TrainError, _check_run_folder

    cfg = TrainConfig(data=["d"], out=str(tmp_path / "r"), steps=1)
    out = tmp_path / "r"
    (out / "checkpoints" / "step-0000001").mkdir(parents=True)
    (out / "checkpoints" / "step-0000001" / "state.pt").write_text("x")
    (out / "checkpoints" / "mine.txt").write_text("mine")
    (out / "config.json").write_text(json.dumps(asdict(cfg)))
    other = TrainConfig(data=["d"], out=str(out), steps=1, lr=1e-3)
    with pytest.raises(TrainError) as e:
        _check_run_folder(other, overwrite=False, resume=False)
    assert "different training run" in _one_line(e.value) and "lr" in str(e.value)
    assert _check_run_folder(cfg, overwrite=False, resume=True) == out / "checkpoints" / "step-0000001"
    assert _check_run_folder(other, overwrite=True, resume=False, log=lambda _: None) is None
    assert _files(out) == ["checkpoints/mine.txt"]
