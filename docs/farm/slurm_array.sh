#!/bin/bash
# Render one synth dataset as a Slurm job array, then merge it.
#
#   sbatch --export=ALL,OUT=/shared/datasets/colon-50k docs/farm/slurm_array.sh
#
# Every array task renders one shard (a contiguous block of frames) into the same folder on a
# shared filesystem; the shards of one seed together are exactly the frames of a single run.
# The task that finishes last finalizes the dataset itself; the dependent merge job below makes
# sure it happens (and says which frames are missing if a task failed).
#
# Edit the #SBATCH lines and the variables to your cluster. Keep N_SHARDS equal to --array's size.
#SBATCH --job-name=synth-render
#SBATCH --array=0-99%50            # 100 shards, at most 50 running at once
#SBATCH --cpus-per-task=8
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --requeue                  # a preempted task starts again and renders only what is missing
#SBATCH --output=logs/synth-render-%A_%a.out
##SBATCH --gres=gpu:1              # GPU nodes: uncomment and set DEVICE=gpu
set -euo pipefail

N_SHARDS=${N_SHARDS:-100}
N_FRAMES=${N_FRAMES:-50000}
SEED=${SEED:-0}
OUT=${OUT:?set OUT to a folder on a filesystem every node mounts}
DEVICE=${DEVICE:-cpu}
SYNTH=${SYNTH:-synth}              # e.g. /shared/envs/synth/bin/synth

if [[ -z "${SLURM_ARRAY_TASK_ID:-}" ]]; then
  # Submitted by hand (not as an array task): submit the array, then the merge after it.
  array_id=$(sbatch --parsable --export=ALL,OUT="$OUT",N_SHARDS="$N_SHARDS",N_FRAMES="$N_FRAMES",SEED="$SEED",DEVICE="$DEVICE" "$0")
  sbatch --dependency=afterany:"$array_id" --job-name=synth-merge --cpus-per-task=1 --mem=4G --time=00:30:00 \
    --output=logs/synth-merge-%j.out --wrap "$SYNTH merge '$OUT'"
  echo "submitted array $array_id and its merge job"
  exit 0
fi

# All CPUs of the allocation go to this task's rendering processes (Cycles threads split among them).
WORKERS=$(( SLURM_CPUS_PER_TASK >= 4 ? 2 : 1 ))
exec "$SYNTH" render \
  --n "$N_FRAMES" --seed "$SEED" --out "$OUT" \
  --resolution 256 --quality default \
  --device "$DEVICE" \
  --workers "$WORKERS" --threads $(( SLURM_CPUS_PER_TASK / WORKERS )) \
  --shard "$SLURM_ARRAY_TASK_ID/$N_SHARDS"
