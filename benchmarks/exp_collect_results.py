"""Copy the plots of the experiment reports into docs/results/ and print their headline numbers.

    python benchmarks/exp_collect_results.py runs/exp docs/results
    python benchmarks/exp_collect_results.py runs/exp3-4000 docs/results --prefix f4000-


For each report folder under the first argument: its plots are copied as
docs/results/<prefix><report>-<plot>.png (a prefix keeps the plots of
reports with the same name in different OUT folders apart), and one Markdown line per (run, test set) is printed with the
metrics RESULTS.md quotes. The numbers in RESULTS.md are copied from this output, not typed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def main(src: Path, dst: Path, prefix: str = "") -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for rep_dir in sorted(p for p in src.iterdir() if (p / "report.json").exists()):
        rep = json.loads((rep_dir / "report.json").read_text())
        for png in sorted(rep_dir.glob("*.png")):
            shutil.copy2(png, dst / f"{prefix}{rep_dir.name}-{png.name}")
        train = ", ".join(f"{s['name']} {s['frames']}" for s in rep["data"]["train"])
        print(f"## {rep_dir.name} ({rep['model']['model']}, {rep['seconds']} s; train: {train})")
        for run in rep["runs"]:
            for name, m in run["test"].items():
                if rep["task"] == "segment":
                    keys = ("dice", "iou", "dice_lesion_images", "iou_lesion_images", "dice_pooled", "detection_auc")
                else:
                    keys = ("accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity", "f1")
                print(f"| {run['name']} | {run['train_frames']} | {name} {m['n']} | "
                      + " | ".join(f"{k} {fmt(m.get(k))}" for k in keys) + " |")
        for p in (rep.get("curve") or {}).get("points", []):
            cells = []
            for arm in rep["curve"]["arms"]:
                r = p.get(arm)
                cells.append(f"{arm}: " + ("n/a" if not r else
                             ", ".join(f"{k} AUC {fmt(v['auc'])} acc {fmt(v['accuracy'])}"
                                       for k, v in r.items() if isinstance(v, dict))))
            print(f"| curve {p['fraction']:g} | {p['real_frames']} real | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", nargs="?", type=Path, default=Path("runs/exp"))
    ap.add_argument("dst", nargs="?", type=Path, default=Path("docs/results"))
    ap.add_argument("--prefix", default="", help="put before every copied plot's name")
    a = ap.parse_args()
    main(a.src, a.dst, a.prefix)
