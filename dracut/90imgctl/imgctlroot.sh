#!/bin/sh
# netroot handler for imgctl live roots: fetch and verify the root image with
# imgctl-agent, report the result, then hand the verified file to dmsquash-live.
# A root image that does not match the manifest is never mounted.

. /lib/dracut-lib.sh

eval "$(imgctl-agent cmdline)"
img=/run/initramfs/imgctl-root.img

phone() {
    imgctl-agent phonehome --server "$IMGCTL_URL" --node "$IMGCTL_NODE" \
        --token "$IMGCTL_TOKEN" --digest "$IMGCTL_DIGEST" "$@" || warn "imgctl: phone home failed"
}

if ! out=$(imgctl-agent fetch --manifest "$IMGCTL_MANIFEST" --url "$IMGCTL_ROOT" --out "$img" 2>&1); then
    rm -f "$img"
    phone --state failed --reason "$out"
    warn "imgctl: root image rejected: $out"
    echo "imgctl: root image rejected, not booting it: $out" > /dev/console
    poweroff -f
    exit 1
fi
info "imgctl: $out"
phone --state rootfs --detail "$out"
exec /sbin/dmsquash-live-root "$img"
