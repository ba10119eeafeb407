#!/usr/bin/env bash
# The current transfer measurements of docs/RESULTS.md, one function per table. Run from the
# repository root next to ../shared/data:
#
#   benchmarks/exp_classify.sh import              # Kvasir-SEG, CP-CHILD, BloodMNIST -> runs/real/ (+ Kvasir patches)
#   benchmarks/exp_classify.sh render600 ab600     # the 600-frame A/B table: U-Net and fair patches on one render
#   SET="--set lesion.lobulation=0.15,0.45" NAME=lob benchmarks/exp_classify.sh render600 ab600   # a row with scene keys
#   benchmarks/exp_classify.sh render2000 evaluate2000   # spec at 2,000 frames: one synth evaluate, F1 and row-2 U-Net
#   benchmarks/exp_classify.sh blood10 blood1      # the augment protocol on 10 % and 1 % of BloodMNIST
#
# Every command takes --seed 0 and writes under runs/. The tables of earlier renders were made with
# the functions of this script as it stood at commit 8340ace (`git show 8340ace:benchmarks/exp_classify.sh`);
# RESULTS.md quotes their commands beside each table.
set -euo pipefail
S=${SYNTH:-.venv/bin/synth}
DATA=${DATA:-../shared/data}
NAME=${NAME:-s2}          # the 600-frame render's name under runs/ab/
SET=${SET:-}              # scene keys of a 600-frame row (--set KEY=VALUE ...)

import() {
  [ -d "$DATA/kvasir-seg-256" ] || { echo "error: $DATA has no kvasir-seg-256 (set DATA=...)"; exit 2; }
  $S data import "$DATA/kvasir-seg-256" --out runs/real/kvasir --label lesion --class-names normal,lesion --seed 0
  $S data import "$DATA/cp-child-256" --out runs/real/cpchild --layout classes --class-names normal,lesion --seed 0
  for s in train val test; do $S data import "$DATA/bloodmnist.npz" --split $s --out runs/real/blood-$s; done
  $S data patches runs/real/kvasir --out runs/real/kvasir-patches --seed 0
}

# ---- The 600-frame A/B table ("The look of the renders"): one render, the U-Net on all 998
# Kvasir-SEG frames (three training seeds: one moves a row by several points), the fair patch
# test (ResNet-18) on all Kvasir patches, realism on 300 frames.
render600() {
  # shellcheck disable=SC2086  # $SET is a list of options
  $S render --n 600 --resolution 128 --seed 0 --workers 2 --out runs/ab/$NAME-600 $SET
}
ab600() {
  local r=runs/ab/$NAME-600
  $S classify --model unet --train rendered=$r --test real=runs/real/kvasir --size 128 --fov circle --online-aug \
    --epochs 8 --batch-size 16 --eval-at-end --seed 0 --seeds 3 --threads 2 --out $r-seg
  $S data patches $r --out $r-patches --seed 0
  $S classify --model resnet18 --epochs 10 --train rendered=$r-patches --test real=runs/real/kvasir-patches --size 64 \
    --fov none --online-aug --seed 0 --eval-at-end --batch-size 32 --threads 1 --out $r-fair
  $S data snapshot $r --out runs/ab/$NAME-300 --max 300
  $S evaluate runs/ab/$NAME-300 --real runs/real/kvasir --real runs/real/cpchild --budget standard --realism-only \
    --out runs/ab/ev-$NAME-300
}

# ---- A spec at 2,000 frames ("Spec 6 at 2,000 frames")
render2000() {
  $S render --n 2000 --resolution 128 --seed 0 --workers 2 --out runs/v7/r2000
}
evaluate2000() {
  $S evaluate runs/v7/r2000 --real runs/real/kvasir --real runs/real/cpchild --budget standard \
    --set fractions=0.1 --threads 2 --out runs/v7/ev-standard
  $S data patches runs/v7/r2000 --out runs/v7/r2000-patches --seed 0
  for k in 0 1 2; do
    $S classify --model resnet18 --epochs 10 --train rendered=runs/v7/r2000-patches --test real=runs/real/kvasir-patches \
      --size 64 --fov none --online-aug --seed $k --eval-at-end --batch-size 32 --threads 2 --out runs/v7/fair1-s$k
  done
  $S classify --model unet --train rendered=runs/v7/r2000 --test real=runs/real/kvasir --size 128 --fov circle \
    --online-aug --epochs 4 --batch-size 16 --eval-at-end --seed 0 --seeds 3 --threads 2 --out runs/v7/row2-unet
}

# ---- Augmentation that pays? ("Augmentation that pays"): generators on a real share of
# BloodMNIST, their samples, and the protocol (every row 3 training seeds, equal optimiser steps).
blood_share() {  # $1: share (0.1 or 0.01), $2: folder, $3: generator steps (diffusion gan vae), $4: judge epochs
  local f=$1 d=$2 judge_epochs=$4
  read -r ddpm_steps gan_steps vae_steps <<< "$3"
  mkdir -p $d
  $S data subset runs/real/blood-train --fraction $f --seed 0 --out $d/real
  OMP_NUM_THREADS=1 $S diffusion train --data $d/real --out $d/ddpm --resolution 28 --schedule cosine --prediction v \
    --steps $ddpm_steps --batch-size 16 --checkpoint-every 1000 --seed 0
  OMP_NUM_THREADS=1 $S gan train --data $d/real --out $d/gan --resolution 28 --steps $gan_steps --seed 0
  OMP_NUM_THREADS=1 $S vae train --data $d/real --out $d/vae --resolution 28 --steps $vae_steps --seed 0
  $S classify --train real=runs/real/blood-train:$f --test real=runs/real/blood-val --model resnet18 --size 28 \
    --fov none --epochs $judge_epochs --save-model --seed 0 --threads 1 --out $d/judge
  $S augment --model $d/ddpm --out $d/aug-ddpm --n 150 --sampler dpm++ --steps 20 --guidance 2 --seed 0
  $S augment --model $d/ddpm --out $d/aug-ddpm-filtered --n 150 --sampler dpm++ --steps 20 --guidance 2 --seed 0 \
    --filter-judge $d/judge --filter-threshold 0.5
  $S augment --model $d/gan --out $d/aug-gan --n 150 --seed 0
  $S augment --model $d/vae --out $d/aug-vae --n 150 --seed 0
  $S classify --protocol augment --model resnet18 --size 28 --fov none --epochs 5 --batch-size 64 \
    --train real=runs/real/blood-train:$f --train vae=$d/aug-vae --train gan=$d/aug-gan \
    --train ddpm=$d/aug-ddpm --train ddpm-filtered=$d/aug-ddpm-filtered \
    --test real=runs/real/blood-test --augment-fractions 0.2,0.5 --seeds 3 --judge $d/judge \
    --eval-at-end --seed 0 --threads 1 --out $d/protocol
}
blood10() { blood_share 0.1 runs/blood10 "2000 3000 3000" 10; }
blood1() { blood_share 0.01 runs/blood1 "2000 1500 1500" 50; }

for step in "$@"; do "$step"; done
