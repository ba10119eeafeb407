"""Real Blender renders at tiny size: labels from masks, determinism, resume, and CLI errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from synth.cli import app
from synth.generator.config import RenderConfig
from synth.generator.dataset import Dataset
from synth.generator.run import run_render

TINY = dict(resolution=48, quality="draft", samples=1, frames_per_scene=3)


def render(out, n=6, seed=0, lesion_prob=0.5, **kw):
    cfg = RenderConfig(n=n, out=str(out), seed=seed, lesion_prob=lesion_prob, **TINY)
    return run_render(cfg, quiet=True, **kw)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("r") / "ds"
    render(out, n=8, seed=4, lesion_prob=0.6, preview=True)
    return out


@pytest.mark.blender
def test_render_writes_a_complete_dataset(rendered):
    ds = Dataset.open(rendered)
    assert len(ds) == 8
    assert ds.manifest["kind"] == "rendered" and ds.manifest["seed"] == 4
    assert {"bpy", "numpy", "synth"} <= set(ds.manifest["versions"])
    assert (rendered / "preview.png").exists() and (rendered / "coco.json").exists()
    for rec in ds.records:
        img, mask, depth = ds.image(rec), ds.mask(rec), ds.depth(rec)
        assert img.shape == (48, 48, 3) and mask.shape == (48, 48) and depth.shape == (48, 48)
        assert img.max() > 30  # the endoscope light shows something
        assert (depth > 0).mean() > 0.3
        spec = ds.spec(rec)
        assert spec["index"] == int(rec.id)
        if rec.label == "lesion":
            assert mask.any() and rec.lesion_pixels >= ds.manifest["lesion_pixel_threshold"]
            assert set(np.unique(mask)) - {0} <= {les["instance"] for les in spec["lesions"]}
        else:
            assert not mask.any() and rec.lesion_pixels == 0
    # Labels come from what is visible: some lesion frames must exist at this probability.
    assert 0 < ds.labels().count("lesion") < 8


@pytest.mark.blender
def test_same_seed_same_masks_and_specs(rendered, tmp_path):
    render(tmp_path / "again", n=8, seed=4, lesion_prob=0.6)
    a, b = Dataset.open(rendered), Dataset.open(tmp_path / "again")
    for ra, rb in zip(a.records, b.records):
        assert np.array_equal(a.mask(ra), b.mask(rb))
        assert np.array_equal(a.image(ra), b.image(rb))  # the look is seeded too: same spec, same pixels
        assert json.dumps(a.spec(ra), sort_keys=True) == json.dumps(b.spec(rb), sort_keys=True)
        assert ra.label == rb.label


@pytest.mark.blender
def test_resume_renders_only_missing_frames(tmp_path):
    out = tmp_path / "ds"
    render(out, n=5, seed=1)
    before = {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    mask_before = (out / "masks" / "000003.png").read_bytes()
    for sub, ext in (("records", "json"), ("images", "png"), ("masks", "png")):
        (out / sub / f"000003.{ext}").unlink()
    manifest = render(out, n=5, seed=1)
    after = {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    changed = sorted(k for k in after if after[k] != before.get(k))
    assert changed == ["000003.png"]
    assert (out / "masks" / "000003.png").read_bytes() == mask_before
    assert manifest["counts"]["frames"] == 5
    # Nothing missing: a third run renders nothing.
    again = {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    render(out, n=5, seed=1)
    assert again == {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()}


runner = CliRunner()


def _cli(*args):
    return runner.invoke(app, ["render", *args, "--resolution", "32", "--quality", "draft", "--samples", "1"])


@pytest.mark.parametrize("args, msg", [
    (["--n", "0"], "--n must be a positive"),
    (["--n", "-2"], "--n must be a positive"),
    (["--lesion-prob", "1.5"], "--lesion-prob must be between 0 and 1"),
    (["--shard", "4/4"], "--shard"),
    (["--lesion-area", "0.3,0.1"], "--lesion-area must be MIN,MAX"),
    (["--lesion-area", "big"], "--lesion-area must look like MIN,MAX"),
    (["--overlay-prob", "2"], "--overlay-prob must be between 0 and 1"),
])
def test_cli_bad_values_exit_2_with_one_line(tmp_path, args, msg):
    res = _cli("--out", str(tmp_path / "o"), *args)
    assert res.exit_code == 2
    assert msg in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_cli_resolution_zero_and_not_a_number(tmp_path):
    res = runner.invoke(app, ["render", "--out", str(tmp_path / "o"), "--resolution", "0"])
    assert res.exit_code == 2 and "--resolution must be" in res.output
    res = runner.invoke(app, ["render", "--out", str(tmp_path / "o"), "--n", "many"])
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_cli_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = _cli("--out", str(blocker / "sub"), "--n", "1")
    assert res.exit_code == 2 and "cannot write" in res.output
    res = _cli("--out", str(blocker), "--n", "1")
    assert res.exit_code == 2 and "is a file" in res.output
    assert blocker.read_text() == "x"


@pytest.mark.blender
def test_cli_refuses_a_different_run_and_keeps_it(tmp_path):
    out = tmp_path / "ds"
    assert _cli("--out", str(out), "--n", "2", "--seed", "1").exit_code == 0
    images = sorted(p.name for p in (out / "images").iterdir())
    res = _cli("--out", str(out), "--n", "2", "--seed", "2")
    assert res.exit_code == 2 and "different run" in res.output and "seed" in res.output
    assert sorted(p.name for p in (out / "images").iterdir()) == images
    res = _cli("--out", str(out), "--n", "2", "--seed", "2", "--overwrite")
    assert res.exit_code == 0
    assert Dataset.open(out).manifest["seed"] == 2


def test_help_is_instant_and_light():
    """The one run-time check that `synth --help` stays light (test_architecture follows the imports statically)."""
    code = "import sys, synth.cli; assert not {'bpy', 'torch', 'ray', 'diffusers'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run([sys.executable, "-m", "synth.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "render" in out.stdout



# Renders lesion frames twice in one Blender process: as specified, then with every material
# replaced by flat emission (lesions pure green, everything else black, lights off). The
# object-index pass of the first render (what becomes the mask) must cover exactly the green
# pixels of the second: one sample per pixel, so both renders trace the same camera rays.
_FLAT_COLOUR_SCRIPT = r"""
import json, sys
import bpy
from synth.blender_assets.scene import FrameRenderer, read_exr
from synth.generator.config import RenderConfig
from synth.generator.spec import frame_specs

cfg = RenderConfig(n=6, out="unused", seed=int(sys.argv[1]), lesion_prob=1.0, resolution=64,
                   quality="draft", samples=1, frames_per_scene=3)
renderer = FrameRenderer(cfg.resolution, cfg.render_settings, threads=1)

def flat(name, rgb):
    m = bpy.data.materials.new(name)
    nt = m.node_tree
    nt.nodes.clear()
    em = nt.nodes.new("ShaderNodeEmission")
    em.inputs["Color"].default_value = (*rgb, 1.0)
    out = nt.nodes.new("ShaderNodeOutputMaterial")
    nt.links.new(em.outputs["Emission"], out.inputs["Surface"])
    return m

green, black = flat("green", (0.0, 1.0, 0.0)), flat("black", (0.0, 0.0, 0.0))
rows = []
for spec in frame_specs(seed=cfg.seed, indices=range(cfg.n), lesion_prob=1.0, resolution=cfg.resolution,
                        frames_per_scene=cfg.frames_per_scene, min_lesion_pixels=cfg.lesion_pixel_threshold,
                        render=cfg.render_settings):
    index = renderer.render(spec)["index"]
    lights = [o for o in bpy.data.objects if o.type == "LIGHT"]
    renderer._lumen.data.materials[0] = black
    for obj in renderer._lesions:
        obj.data.materials[0] = green
    for light in lights:
        light.hide_render = True
    path = renderer._tmp / "flat.exr"
    bpy.context.scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    flat_rgb = read_exr(path)["rgb"]
    renderer._lumen.data.materials[0] = renderer._mucosa
    for light in lights:
        light.hide_render = False
    rows.append({"mask": (index > 0.5).astype(int).tolist(), "green": (flat_rgb[..., 1] > 0.5).astype(int).tolist(),
                 "lesions": len(spec["lesions"])})
print("RESULT" + json.dumps(rows))
"""


@pytest.mark.blender
def test_mask_is_exactly_the_visible_lesion_pixels(tmp_path):
    res = subprocess.run([sys.executable, "-c", _FLAT_COLOUR_SCRIPT, "3"], capture_output=True, text=True,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = json.loads(res.stdout.split("RESULT", 1)[1])
    assert sum(r["lesions"] > 0 for r in rows) >= 4  # lesion_prob 1: lesions were placed in view
    for r in rows:
        mask, green = np.array(r["mask"], bool), np.array(r["green"], bool)
        assert mask.any() == (r["lesions"] > 0)
        # Not one pixel differs: the mask is what the camera sees of the lesions.
        assert np.array_equal(mask, green), f"{(mask != green).sum()} pixels differ"


@pytest.mark.blender
def test_lesion_surface_options_change_lesion_pixels_and_keep_masks_exact(rendered, tmp_path):
    """Nodules, a vessel-free mottled surface (spec 6 options, off by default) are material only:
    the frames keep their masks pixel for pixel, and the lesions' pixels change."""
    from synth.generator.scene_config import apply_sets, default_scene

    scene = apply_sets(default_scene(), ["lesion.nodule_strength=0.8,1", "lesion.vessel_visibility=0,0",
                                         "lesion.mottle=0.3,0.4"]).to_dict()
    cfg = RenderConfig(n=8, out=str(tmp_path / "nodular"), seed=4, lesion_prob=0.6, scene=scene, **TINY)
    run_render(cfg, quiet=True)
    a, b = Dataset.open(rendered), Dataset.open(tmp_path / "nodular")
    changed = 0
    for ra, rb in zip(a.records, b.records):
        ma = a.mask(ra)
        assert np.array_equal(ma, b.mask(rb))
        if ma.any():
            diff = np.abs(a.image(ra).astype(int) - b.image(rb).astype(int)).sum(axis=2)
            changed += int(diff[ma > 0].mean() > 2)
    assert changed >= 2


@pytest.mark.blender
def test_mounds_raise_the_wall_and_never_enter_the_mask(rendered, tmp_path):
    """Spec version 9 hard negatives: the same frames with mounds change the wall's pixels outside the
    lesions, and the masks only ever lose pixels (a mound in front of a lesion hides part of it)."""
    from synth.generator.scene_config import apply_sets, default_scene

    scene = apply_sets(default_scene(), ["mounds.prob=1", "mounds.count=3,3", "mounds.size_cm=0.5,0.8",
                                         "mounds.height=0.5,0.6", "mounds.position_r2=0,0.5"]).to_dict()
    cfg = RenderConfig(n=8, out=str(tmp_path / "mounds"), seed=4, lesion_prob=0.6, scene=scene, **TINY)
    run_render(cfg, quiet=True)
    a, b = Dataset.open(rendered), Dataset.open(tmp_path / "mounds")
    changed = 0
    for ra, rb in zip(a.records, b.records):
        ma, mb = a.mask(ra), b.mask(rb)
        assert not ((mb > 0) & (ma == 0)).any()
        assert len(b.spec(rb)["mounds"]) > 0
        outside = (ma == 0) & (mb == 0)
        diff = np.abs(a.image(ra).astype(int) - b.image(rb).astype(int)).sum(axis=2)
        changed += int((diff[outside] > 30).mean() > 0.01)
    assert changed >= 5  # the mounds show on the wall of most frames

