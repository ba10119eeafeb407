"""Scene files: the schema, the packaged default, --set, errors, and a rendered run that records its scene."""

import json

import pytest
from typer.testing import CliRunner

from synth.cli import app
from synth.generator.config import ConfigError, RenderConfig
from synth.generator.run import _scene_check
from synth.generator.scene_config import (SceneConfig, SceneError, apply_sets, default_scene, dumps, load_scene,
                                          loads, parse_set, resolve_scene, scene_diff)
from synth.generator.spec import frame_specs

from test_scene_pins import PINNED, digest


def specs(n=12, seed=1, **kw):
    return list(frame_specs(seed=seed, indices=range(n), lesion_prob=1.0, resolution=64, frames_per_scene=4,
                            min_lesion_pixels=8, render={}, **kw))


# --------------------------------------------------------------------------- the file


def test_round_trip_load_write_load_is_equal(tmp_path):
    sc = default_scene()
    path = tmp_path / "scene.toml"
    path.write_text(dumps(sc))
    again = load_scene(path)
    assert again == sc and again.to_dict() == sc.to_dict()
    assert loads(dumps(again)) == sc
    # A changed scene survives the trip too (tables, ranges, integer ranges).
    changed = apply_sets(sc, ["camera.views.lumen=0.45", "camera.views.oblique=0.35", "camera.views.wall=0.2",
                              "lesion.size_cm.flat=0.3,2.5", "mucosa.vessels.count=10,20", "artefacts.overlay_prob=0"])
    path.write_text(dumps(changed))
    assert load_scene(path) == changed != sc


def test_packaged_file_is_what_the_writer_writes():
    # The comments in the packaged file are the schema's docs: editing one without the other fails here.
    from importlib import resources

    text = resources.files("synth.generator").joinpath("default_scene.toml").read_text()
    assert text == dumps(default_scene())
    n_keys = sum(1 for line in text.splitlines() if " = " in line and not line.startswith("#"))
    n_comments = sum(1 for line in text.splitlines() if line.startswith("# ") and not line.startswith("# synth"))
    assert n_keys > 100 and n_comments >= n_keys  # one comment per key, one per section


def test_default_scene_gives_the_pinned_specs():
    explicit = list(frame_specs(seed=1, indices=range(12), lesion_prob=0.5, resolution=64, frames_per_scene=4,
                                min_lesion_pixels=8, render=RenderConfig().render_settings,
                                scene_config=resolve_scene(None, [])))
    assert [digest(s) for s in explicit] == PINNED[1]


def test_a_partial_file_equals_the_same_sets(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text("[lesion]\narea = [0.1, 0.2]\n[camera.views]\nlumen = 0.5\nwall = 0.5\n")
    by_file = load_scene(p)
    by_set = apply_sets(default_scene(), ["lesion.area=0.1,0.2", "camera.views.lumen=0.5", "camera.views.oblique=0",
                                          "camera.views.wall=0.5"])
    assert by_file == by_set
    assert scene_diff(default_scene().to_dict(), by_file.to_dict()) == [
        "camera.views.lumen", "camera.views.oblique", "camera.views.wall", "lesion.area"]


def test_set_changes_what_is_drawn():
    base = specs()
    sc = apply_sets(default_scene(), ["camera.views.lumen=0", "camera.views.oblique=0", "camera.views.wall=1",
                                      "lesion.paris.0-Ip=1", "lesion.paris.0-Isp=0", "lesion.paris.0-Is=0",
                                      "lesion.paris.0-IIa=0", "lesion.paris.0-IIc=0", "mucosa.hue=0.6,0.6",
                                      "artefacts.jpeg_prob=1", "artefacts.jpeg_quality=70,70"])
    changed = specs(scene_config=sc)
    assert {s["camera"]["view"] for s in changed} == {"wall"} != {s["camera"]["view"] for s in base}
    assert {les["paris"] for s in changed for les in s["lesions"]} == {"0-Ip"}
    assert {s["artefacts"]["jpeg_quality"] for s in changed} == {70}
    r, g, b = changed[0]["scene"]["mucosa"]["base_color"]
    assert b > r  # hue 0.6 is blue
    # Integer ranges include both ends.
    counts = {s["scene"]["mucosa"]["vessels"]["count"]
              for s in specs(n=80, scene_config=apply_sets(default_scene(), ["mucosa.vessels.count=3,4"]))}
    assert counts == {3, 4}


# --------------------------------------------------------------------------- --set and errors


def test_parse_set():
    assert parse_set("camera.views.wall=0.4") == ("camera.views.wall", 0.4)
    assert parse_set("camera.wall_offset = 0.5,0.9") == ("camera.wall_offset", [0.5, 0.9])
    assert parse_set("lesion.size_cm.flat=[0.3, 2.5]") == ("lesion.size_cm.flat", [0.3, 2.5])
    assert parse_set("mucosa.vessels.count=10,20") == ("mucosa.vessels.count", [10, 20])
    assert parse_set("lesion.count.4=0.1") == ("lesion.count.4", 0.1)


@pytest.mark.parametrize("item, words", [
    ("camera", "KEY=VALUE"),
    ("camera.nope=1", "unknown scene key 'camera.nope'"),
    ("camera=1", "is a section"),
    ("camera.views=1", "one entry of the table camera.views"),
    ("camera.views.up=1", "unknown scene key 'camera.views.up'"),
    ("lesion.area=0.1", "MIN,MAX"),
    ("lesion.area=0.5,0.1", "lesion.area has min 0.5 > max 0.1"),
    ("mucosa.vessels.count=1.5,3", "two integers"),
    ("camera.fisheye_prob=1.5", "camera.fisheye_prob is a probability"),
    ("camera.fisheye_prob=abc", "a number"),
    ("camera.views.wall=0.5", "camera.views sum to 1.1"),
    ("lesion.area=0,0.5", "lesion.area must be above 0"),
])
def test_bad_set_is_one_clear_error(item, words):
    with pytest.raises(SceneError) as e:
        apply_sets(default_scene(), [item])
    assert words in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("text, words", [
    ("[lesion]\nsizes = 1\n", "unknown key lesion.sizes"),
    ("lighting = 1\n", "unknown key lighting"),
    ("[lesion.size_cm]\nhuge = [1, 2]\n", "unknown key lesion.size_cm.huge"),
    ("[lesion]\narea = [0.5, 0.1]\n", "lesion.area has min 0.5 > max 0.1"),
    ("[camera]\nviews = {lumen = 0.5, wall = 0.2}\n", "camera.views sum to 0.7"),
    ("[mucosa]\nhue = \"red\"\n", "mucosa.hue must be a range"),
    ("[lumen]\ntaeniae_prob = true\n", "lumen.taeniae_prob must be a number"),
    ("[mucosa.vessels]\ncount = [10.5, 20]\n", "mucosa.vessels.count must be a range [min, max] of two integers"),
    ("[mucosa\nhue = 1\n", "does not parse as TOML"),
])
def test_bad_scene_file_exits_2_naming_key_and_file(tmp_path, text, words):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(SceneError) as e:
        load_scene(p)
    assert words in str(e.value) and str(p) in str(e.value)
    res = CliRunner().invoke(app, ["scene", "show", "--scene", str(p)])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: scene file") and words in lines[0]


def test_bad_scene_in_render_writes_nothing(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[camera]\nviews = {lumen = 2.0}\n")
    out = tmp_path / "never"
    res = CliRunner().invoke(app, ["render", "--n", "1", "--out", str(out), "--scene", str(p)])
    assert res.exit_code == 2 and "camera.views" in res.output and str(p) in res.output
    res = CliRunner().invoke(app, ["render", "--n", "1", "--out", str(out), "--set", "lesion.lobes=5,3"])
    assert res.exit_code == 2 and "lesion.lobes" in res.output
    assert not out.exists()


def test_scene_show_prints_the_resolved_scene_with_comments(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text("[lesion]\narea = [0.1, 0.2]\n")
    res = CliRunner().invoke(app, ["scene", "show", "--scene", str(p), "--set", "camera.fisheye_prob=0.25"])
    assert res.exit_code == 0
    assert "area = [0.1, 0.2]" in res.output and "fisheye_prob = 0.25" in res.output
    assert "# View mix (sum 1)" in res.output
    assert loads(res.output) == apply_sets(default_scene(), ["lesion.area=0.1,0.2", "camera.fisheye_prob=0.25"])


def test_folder_from_before_scene_files_resumes_with_the_default_scene(tmp_path):
    cfg = RenderConfig(out=str(tmp_path)).resolved()
    old = cfg.to_json()
    del old["scene"]  # what config.json looked like before scene files
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert _scene_check(tmp_path, cfg) == ("scene",)
    other = RenderConfig(out=str(tmp_path), scene=apply_sets(default_scene(), ["lesion.lobes=3,4"]).to_dict())
    with pytest.raises(ConfigError, match="differs in: lesion.lobes"):
        _scene_check(tmp_path, other.resolved())


# --------------------------------------------------------------------------- a real render


@pytest.mark.blender
def test_render_with_set_records_the_scene_and_refuses_another(tmp_path):
    out = tmp_path / "ds"
    base = ["render", "--n", "2", "--out", str(out), "--resolution", "32", "--quality", "draft", "--samples", "1",
            "--frames-per-scene", "2", "--lesion-prob", "1"]
    sets = ["--set", "camera.views.lumen=0", "--set", "camera.views.oblique=0", "--set", "camera.views.wall=1",
            "--set", "lesion.area=0.1,0.15"]
    res = CliRunner().invoke(app, base + sets)
    assert res.exit_code == 0, res.output
    from synth.generator.dataset import Dataset

    ds = Dataset.open(out)
    for rec in ds.records:  # the spawned worker drew from the resolved scene it was handed
        spec = ds.spec(rec)
        assert spec["camera"]["view"] == "wall"
        assert all(0.1 <= les["target_area"] <= 0.15 for les in spec["lesions"])
    recorded = load_scene(out / "scene.toml")
    assert recorded.camera.views == {"lumen": 0.0, "oblique": 0.0, "wall": 1.0}
    assert recorded.lesion.area == (0.1, 0.15)
    assert ds.manifest["config"]["scene"] == recorded.to_dict() and ds.manifest["scene_file"] == "scene.toml"
    assert json.loads((out / "config.json").read_text())["scene"] == recorded.to_dict()
    # The same command resumes; the same scene given as a file resumes too.
    assert CliRunner().invoke(app, base + sets).exit_code == 0
    assert CliRunner().invoke(app, base + ["--scene", str(out / "scene.toml")]).exit_code == 0
    # Another --set is another run: one line naming the key, nothing changed.
    before = (out / "config.json").read_text()
    res = CliRunner().invoke(app, base + sets[:-1] + ["lesion.area=0.1,0.3"])
    assert res.exit_code == 2
    assert res.output.strip().count("\n") == 0 and "different scene (differs in: lesion.area)" in res.output
    assert (out / "config.json").read_text() == before
    # So is a shard of it.
    res = CliRunner().invoke(app, base + ["--shard", "0/2"])
    assert res.exit_code == 2 and "camera.views.wall" in res.output


@pytest.mark.blender
def test_a_frame_renders_the_same_after_other_lumens_as_alone(tmp_path):
    # Cycles' persistent data once let a previous lumen leak into the next scene's frames: frame 3
    # of this run differed from frame 3 rendered alone (and between two runs of the same command).
    import numpy as np

    from synth.generator.dataset import read_image
    from synth.generator.run import run_render

    kw = dict(n=4, seed=1, resolution=32, quality="draft", samples=1, frames_per_scene=1, lesion_prob=0.0)
    run_render(RenderConfig(out=str(tmp_path / "all"), **kw), quiet=True)
    run_render(RenderConfig(out=str(tmp_path / "alone"), **kw), shard=(3, 4), quiet=True)
    a = read_image(tmp_path / "all" / "images" / "000003.png")
    b = read_image(tmp_path / "alone" / "images" / "000003.png")
    assert np.array_equal(a, b)


def test_scene_files_in_docs_load_and_differ_from_the_default_only_where_fitted():
    # docs/scenes holds measured scenes (docs/RESULTS.md); a schema change that breaks one fails here, not for a user.
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "docs" / "scenes"
    fitted = load_scene(folder / "cpchild-fitted.toml")
    pink = load_scene(folder / "cpchild-fitted-default-colour.toml")
    colour = ["mucosa.color_variation", "mucosa.hue", "mucosa.saturation", "mucosa.value"]
    default = default_scene().to_dict()
    changed = scene_diff(default, fitted.to_dict())
    assert set(colour) <= set(changed) and all(k.split(".")[0] in {"mucosa", "artefacts", "camera"} for k in changed)
    assert scene_diff(fitted.to_dict(), pink.to_dict()) == colour
    assert not set(colour) & set(scene_diff(default, pink.to_dict()))
