#!/usr/bin/env bash
# run.sh is `make run`: build the shipped example chain
# (base → compute-base → compute-slurm) and its boot artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."
IMGCTL=${IMGCTL:-bin/imgctl}
say() { printf '\n==> %s\n' "$*" >&2; }

say "building layers/compute-slurm.yaml (parents first; cached layers are reused)"
start=$(date +%s)
"$IMGCTL" build layers/compute-slurm.yaml
say "chain built in $(( $(date +%s) - start ))s"

say "images"
"$IMGCTL" images
