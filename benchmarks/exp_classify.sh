#!/usr/bin/env bash
# The transfer experiments of docs/RESULTS.md, one function per row. Run from the repository root:
#
#   benchmarks/exp_classify.sh import          # real data into runs/real (needs ../shared/data)
#   benchmarks/exp_classify.sh row4 row4full   # BloodMNIST: 10 % real (+ diffusion if present), 100 % real
#   benchmarks/exp_classify.sh snapshot        # freeze the finished frames of runs/render-128
#   benchmarks/exp_classify.sh row1 row1resnet row2 row3  # rendered -> real colonoscopy
#   benchmarks/exp_classify.sh row0            # real-only baseline with and without the field of view
#   RENDER=runs/r4000 benchmarks/exp_classify.sh evaluate   # realism, rows 2 / F1c / F3r in one `synth evaluate`
#
# Every command takes --seed 0 and writes a report folder under runs/exp/. Outputs stay out of git.
set -euo pipefail
S=${SYNTH:-.venv/bin/synth}
DATA=${DATA:-../shared/data}
RENDER=${RENDER:-runs/render-128}
SNAP=${SNAP:-runs/render-128-snap}
OUT=${OUT:-runs/exp}
mkdir -p "$OUT"

import() {
  [ -d "$DATA/kvasir-seg-256" ] || { echo "error: $DATA has no kvasir-seg-256 (set DATA=...)"; exit 2; }
  $S data import "$DATA/kvasir-seg-256" --out runs/real/kvasir --label lesion --class-names normal,lesion
  $S data import "$DATA/cp-child-256" --out runs/real/cpchild --layout classes --class-names normal,lesion
  for s in train val test; do $S data import "$DATA/bloodmnist.npz" --split $s --out runs/real/blood-$s; done
}

snapshot() {
  $S data snapshot "$RENDER" --out "$SNAP" ${MAX_FRAMES:+--max $MAX_FRAMES} --overwrite
}

BLOOD="--model resnet18 --size 28 --fov none --test real=runs/real/blood-test --batch-size 64 --eval-at-end --seed 0 --overwrite"

row4() {
  # BloodMNIST at 28x28, ResNet-18 from random init, no field-of-view mask (microscopy, one source).
  local common="$BLOOD"
  $S classify --train real=runs/real/blood-train:0.1 --epochs 10 --out $OUT/row4-blood-10pct $common
  if [ -d runs/blood-augment ]; then
    $S classify --train real=runs/real/blood-train:0.1 --train diffusion=runs/blood-augment --epochs 10 \
      --out $OUT/row4-blood-10pct-diffusion $common
  else
    echo "row4: runs/blood-augment missing: make it with synth diffusion train + synth augment (see docs/RESULTS.md)"
  fi
}

row4full() {
  $S classify --train real=runs/real/blood-train --epochs ${FULL_EPOCHS:-1} --out $OUT/row4-blood-100pct $BLOOD
}

# Real colonoscopy test: Kvasir-SEG polyps (lesion) against CP-CHILD normal mucosa, every image
# behind the same circular field of view.
REAL_TEST="--test real=runs/real/kvasir --test real=runs/real/cpchild"

R1="--train rendered=$SNAP $REAL_TEST --size 128 --fov circle --online-aug --seed 0 --overwrite"

row1() {
  $S classify --model smallcnn --epochs 15 --batch-size 32 --out $OUT/row1-smallcnn $R1
}

row1resnet() {
  $S classify --model resnet18 --epochs 5 --batch-size 32 --eval-at-end --out $OUT/row1-resnet18 $R1
}

row2() {
  $S classify --model unet --train rendered=$SNAP $REAL_TEST \
    --size 128 --fov circle --online-aug --epochs ${UNET_EPOCHS:-8} --batch-size 16 --eval-at-end --seed 0 --overwrite --out $OUT/row2-unet
}

row3() {
  # Transfer curve: fractions of the real training pool (70 % of each real folder; the other 30 % is the
  # test set), alone and mixed with the rendered frames. Row 3 of RESULTS.md is its 10 % point.
  $S classify --protocol curve --model smallcnn --train rendered=$SNAP \
    --train real=runs/real/kvasir --train real=runs/real/cpchild $REAL_TEST \
    --curve ${CURVE:-0,0.01,0.05,0.1,0.25,1} --size 128 --fov circle --online-aug --epochs ${CURVE_EPOCHS:-10} --batch-size 32 \
    --seed 0 --overwrite --out $OUT/row3-curve
}

row0() {
  # The shortcut check: real only (70 % of each real folder to train, 30 % to test), with the circular
  # field of view and without it. The gap is what borders and on-screen text are worth.
  for fov in circle none; do
    $S classify --model smallcnn --train real=runs/real/kvasir --train real=runs/real/cpchild $REAL_TEST \
      --size 128 --fov $fov --epochs 5 --batch-size 32 --eval-at-end --seed 0 --overwrite --out $OUT/row0-real-only-fov-$fov
  done
}

# ---------------------------------------------------------------------------------------------
# Second render (docs/RESULTS.md, current table): lesions sized like Kvasir-SEG's, 128 px.
#   synth render --n 4000 --resolution 128 --seed 1 --out runs/render-128v2 --lesion-area 0.03,0.6 --workers 2
#   RENDER=runs/render-128v2 SNAP=runs/render-128v2-snap benchmarks/exp_classify.sh snapshot
#   OUT=runs/exp2 SNAP=runs/render-128v2-snap benchmarks/exp_classify.sh fit2 row1b2 row42 row32 row22 row4full2
C2="--size 128 --fov circle --online-aug --seed 0 --overwrite --eval-at-end --batch-size 32"

fit2() {  # can the model learn the rendered task? 70 % of the renders to train, 30 % to test
  $S classify --model smallcnn --epochs 10 --train rendered=$SNAP --test rendered=$SNAP --out $OUT/fit-smallcnn $C2
}
row1b2() {
  $S classify --model smallcnn --epochs 10 --train rendered=$SNAP $REAL_TEST --out $OUT/row1-smallcnn $C2
}
row42() {  # needs runs/blood-augment: a model trained on exactly the 10 % below (synth data subset)
  $S classify --train real=runs/real/blood-train:0.1 --train diffusion=runs/blood-augment --epochs 10 \
    --out $OUT/row4-blood-10pct-diffusion $BLOOD
}
row32() {
  $S classify --protocol curve --model smallcnn --train rendered=$SNAP --train real=runs/real/kvasir \
    --train real=runs/real/cpchild $REAL_TEST --curve 0,0.1 --epochs 6 --out $OUT/row3-curve $C2
}
row22() {
  $S classify --model unet --train rendered=$SNAP $REAL_TEST --epochs 4 --out $OUT/row2-unet \
    --size 128 --fov circle --online-aug --seed 0 --overwrite --eval-at-end --batch-size 16
}
row4full2() {
  $S classify --train real=runs/real/blood-train --epochs 2 --threads 1 --out $OUT/row4-blood-100pct $BLOOD
}
blood_augment() {  # the diffusion samples of row 4b, from the 10 % that row 4a trained on
  $S data subset runs/real/blood-train --fraction 0.1 --seed 0 --out runs/blood-10pct
  $S diffusion train --data runs/blood-10pct --out runs/blood10-ddpm --resolution 28 --steps 4000 --schedule linear --prediction epsilon \
    --batch-size 16 --checkpoint-every 1000 --seed 0   # stopped after the step-2000 checkpoint in RESULTS.md
  $S augment --model runs/blood10-ddpm --out runs/blood-augment --n 150 --sampler dpm++ --steps 20 --seed 0
}

# ---- The fair real test: lesion and normal patches cut from the same Kvasir-SEG frames
# (`synth data patches`), so brightness, borders and zoom no longer tell the classes apart.
# The rendered frames are cut the same way. Run after import and snapshot:
#   OUT=runs/exp3 SNAP=runs/render-128v2-snap benchmarks/exp_classify.sh patches fair_trivial fair_fit fair1 fair3 fair_fit_resnet fair1resnet
PATCHES=${PATCHES:-${SNAP}-patches}
KP=runs/real/kvasir-patches
CP="--size 64 --fov none --online-aug --seed 0 --overwrite --eval-at-end --batch-size 32 --threads ${THREADS:-2}"

patches() {
  $S data patches runs/real/kvasir --out $KP --seed 0 --overwrite
  $S data patches $SNAP --out $PATCHES --seed 0 --overwrite
}
fair_trivial() {  # one number per image, no learning: how much do the patch classes differ trivially?
  .venv/bin/python benchmarks/exp_trivial_baseline.py $KP --fov none --size 64
}
fair_fit() {  # can the small CNN learn lesion-vs-normal on rendered patches? (70 % train / 30 % test)
  $S classify --model smallcnn --epochs 15 --train rendered=$PATCHES --test rendered=$PATCHES --out $OUT/fair-fit-smallcnn $CP
}
fair1() {  # row 1, fair: rendered patches only -> every real Kvasir-SEG patch
  $S classify --model smallcnn --epochs 15 --train rendered=$PATCHES --test real=$KP --out $OUT/fair1-smallcnn $CP
}
fair_fit_resnet() {
  $S classify --model resnet18 --epochs 10 --train rendered=$PATCHES --test rendered=$PATCHES --out $OUT/fair-fit-resnet18 $CP
}
fair1resnet() {
  $S classify --model resnet18 --epochs 10 --train rendered=$PATCHES --test real=$KP --out $OUT/fair1-resnet18 $CP
}
fair3resnet() {  # row 3, fair, ResNet-18: 10 % real alone and with the rendered patches
  $S classify --protocol curve --model resnet18 --train rendered=$PATCHES --train real=$KP --test real=$KP \
    --curve ${CURVE:-0.1} --epochs 10 --out $OUT/fair3-curve-resnet18 $CP
}
fair3() {  # row 3, fair: real fractions alone and with the rendered patches; 30 % of the real frames are the test
  $S classify --protocol curve --model smallcnn --train rendered=$PATCHES --train real=$KP --test real=$KP \
    --curve ${CURVE:-0,0.1,1} --epochs 15 --out $OUT/fair3-curve $CP
}

# ---- Row 4b again with a model trained on the same 10 % with the cosine schedule and v-prediction
blood_augment_cosv() {
  $S diffusion train --data runs/blood-10pct --out runs/blood10-cosv --resolution 28 --schedule cosine --prediction v \
    --steps 3000 --batch-size 16 --checkpoint-every 1000 --seed 0
  $S augment --model runs/blood10-cosv --out runs/blood-augment-cosv --n 150 --sampler dpm++ --steps 20 --guidance 2 --seed 0
}
row4cosv() {
  $S classify --train real=runs/real/blood-train:0.1 --train diffusion=runs/blood-augment-cosv --epochs 10 \
    --out $OUT/row4-blood-10pct-diffusion-cosv $BLOOD --threads 1
}

# ---- One command for the rendered -> Kvasir-SEG rows: realism gaps, the U-Net of row 2 (Dice of the
# rendered-only model on real frames), the ResNet-18 patch classifier of F1c and the 10 % point of F3r
# (low data), each beside a real-trained reference on the same held-out split.
evaluate() {
  $S evaluate "$RENDER" --real runs/real/kvasir --real runs/real/cpchild --budget ${BUDGET:-standard} --seed 0 \
    --out $OUT/evaluate-${BUDGET:-standard} --overwrite
}

for step in "$@"; do "$step"; done
