#!/usr/bin/env bash
# run.sh is `make run`: build the shipped example chain (base → compute-base →
# compute-slurm), flatten compute-base into boot artifacts, register one node
# and network-boot it in QEMU through imgctl's own boot service, phase by
# phase. Everything is cached, so a second run only boots. Ctrl-C stops the
# boot; `imgctl vm boot` removes the machine, the service and the namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
IMGCTL=${IMGCTL:-bin/imgctl}
NODE=${IMGCTL_DEMO_NODE:-demo01}
IMAGE=${IMGCTL_DEMO_IMAGE:-compute-base}
# A locally administered MAC and an address inside the private boot bridge
# that `imgctl vm boot` creates in its own namespace.
MAC=${IMGCTL_DEMO_MAC:-52:54:00:4d:00:01}
IP=${IMGCTL_DEMO_IP:-10.59.0.11}
say() { printf '\n==> %s\n' "$*" >&2; }

say "building layers/compute-slurm.yaml (parents first; cached layers are reused)"
start=$(date +%s)
"$IMGCTL" build layers/compute-slurm.yaml
say "chain built in $(( $(date +%s) - start ))s"
"$IMGCTL" images

say "boot artifacts for $IMAGE (kernel, dracut initramfs, squashfs root)"
start=$(date +%s)
"$IMGCTL" artifacts build "imgctl/$IMAGE:latest"
say "artifacts ready in $(( $(date +%s) - start ))s"

say "inventory: node $NODE ($MAC, $IP) boots $IMAGE live"
if "$IMGCTL" node ls "$NODE" >/dev/null 2>&1; then
    "$IMGCTL" node set "$NODE" --mac "$MAC" --ip "$IP" --image "$IMAGE" --mode live
else
    "$IMGCTL" node add "$NODE" --mac "$MAC" --ip "$IP" --image "$IMAGE" --mode live
fi

say "booting $NODE in QEMU through imgctl serve (DHCP → iPXE → kernel → root → booted)"
status=0
"$IMGCTL" vm boot "$NODE" || status=$?

say "imgctl node ls"
"$IMGCTL" node ls
exit "$status"
