#!/bin/sh
# netroot handler for imgctl live roots: fetch and verify the root image with
# imgctl-agent, report the result, then hand the verified local file to
# dmsquash-live (squashfs loop-mounted read-only under an overlayfs with a
# tmpfs upper). A root image that does not match the manifest is never
# mounted: after a bounded number of whole-image attempts the node reports
# `failed` and powers off.

. /lib/dracut-lib.sh

eval "$(imgctl-agent cmdline)"
img=/run/initramfs/imgctl-root.img
attempts=3

phone() {
    imgctl-agent phonehome --server "$IMGCTL_URL" --node "$IMGCTL_NODE" \
        --token "$IMGCTL_TOKEN" --manifest "$IMGCTL_MANIFEST" "$@" || warn "imgctl: phone home failed"
}

# Tree distribution: pieces come from the sources the coordinator names (the
# server or peers), and this node serves what it holds while it receives.
set --
if [ "$IMGCTL_DIST" = tree ]; then
    set -- --dist tree --coordinator "$IMGCTL_COORDINATOR" --node "$IMGCTL_NODE" --token "$IMGCTL_TOKEN" \
        --peer-port "${IMGCTL_PEERPORT:-7073}" --stall "${IMGCTL_STALL:-15}"
fi
# Multicast distribution: pieces come from the server's carousel on the
# group; what this node misses is repaired over HTTP from the boot server.
if [ "$IMGCTL_DIST" = multicast ]; then
    set -- --dist multicast --coordinator "$IMGCTL_COORDINATOR" --node "$IMGCTL_NODE" --token "$IMGCTL_TOKEN" \
        --group "$IMGCTL_MCAST_GROUP" --port "${IMGCTL_MCAST_PORT:-7074}" --stall "${IMGCTL_STALL:-15}"
fi

n=1
while :; do
    if out=$(imgctl-agent fetch --manifest "$IMGCTL_MANIFEST" --url "$IMGCTL_ROOT" --out "$img" "$@" 2>&1); then
        break
    fi
    rm -f "$img"
    phone --state failed --reason "attempt $n/$attempts: $out"
    echo "imgctl: root image rejected (attempt $n/$attempts): $out" > /dev/console
    if [ "$n" -ge "$attempts" ]; then
        echo "imgctl: giving up, not booting an unverified root image; powering off" > /dev/console
        poweroff -f
        exit 1
    fi
    n=$((n + 1))
    sleep 5
done
info "imgctl: $out"
phone --state rootfs --detail "$out"
exec /sbin/dmsquash-live-root "$img"
