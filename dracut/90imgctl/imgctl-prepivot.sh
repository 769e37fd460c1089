#!/bin/sh
# pre-pivot hook: copy the node's overlay onto the new root and arrange for the
# booted root to phone home once it reaches multi-user.

command -v getarg >/dev/null || . /lib/dracut-lib.sh
eval "$(imgctl-agent cmdline)"
[ -n "$IMGCTL_URL" ] || return 0

if [ "$IMGCTL_MODE" = nfs ]; then
    imgctl-agent phonehome --server "$IMGCTL_URL" --node "$IMGCTL_NODE" --token "$IMGCTL_TOKEN" \
        --manifest "$IMGCTL_MANIFEST" --state rootfs --detail "NFS root mounted" || warn "imgctl: phone home failed"
fi

# iPXE loads the overlay archive as a second initrd; the kernel unpacked it
# under /imgctl-overlay in the initramfs.
if [ -d /imgctl-overlay ]; then
    cp -a /imgctl-overlay/. "$NEWROOT"/ || warn "imgctl: applying the node overlay failed"
    [ -s "$NEWROOT/etc/hostname" ] && hostname "$(cat "$NEWROOT/etc/hostname")"
    # One console line says what the node got, for operators and the e2e test.
    keys=0
    if [ -s /imgctl-overlay/root/.ssh/authorized_keys ]; then
        while read -r _; do keys=$((keys + 1)); done < /imgctl-overlay/root/.ssh/authorized_keys
    fi
    echo "imgctl: node overlay applied: hostname $(hostname), root authorized_keys: $keys" > /dev/console
fi

# /run survives switch-root: the agent and a runtime unit live there.
mkdir -p /run/imgctl /run/systemd/system/multi-user.target.wants
cp /usr/bin/imgctl-agent /run/imgctl/imgctl-agent
cat > /run/systemd/system/imgctl-booted.service <<UNIT
[Unit]
Description=Report to the imgctl boot service that this node booted
After=multi-user.target network-online.target

[Service]
Type=oneshot
ExecStart=/run/imgctl/imgctl-agent phonehome --server $IMGCTL_URL --node $IMGCTL_NODE --token $IMGCTL_TOKEN --manifest $IMGCTL_MANIFEST --state booted --timeline
UNIT
ln -sf ../imgctl-booted.service /run/systemd/system/multi-user.target.wants/imgctl-booted.service

# Tree distribution: keep serving the verified in-RAM root image (it stays at
# /run/initramfs/imgctl-root.img, under the loop mount) to late joiners for
# imgctl.seedfor seconds, then stop.
if [ "$IMGCTL_DIST" = tree ] && [ "${IMGCTL_SEEDFOR:-0}" -gt 0 ]; then
    cat > /run/systemd/system/imgctl-seed.service <<UNIT
[Unit]
Description=Serve this node's root image to peers (imgctl tree distribution)
# Not urgent: after the node said it booted, and at low priority.
After=network-online.target imgctl-booted.service

[Service]
Nice=10
ExecStart=/run/imgctl/imgctl-agent seed --file /run/initramfs/imgctl-root.img --manifest $IMGCTL_MANIFEST --coordinator $IMGCTL_COORDINATOR --node $IMGCTL_NODE --token $IMGCTL_TOKEN --peer-port ${IMGCTL_PEERPORT:-7073} --stall ${IMGCTL_STALL:-15} --for ${IMGCTL_SEEDFOR}s
UNIT
    # Pulled in by the booted report (a drop-in), not by multi-user.target:
    # that target orders itself after what it wants, and the report runs
    # after it.
    mkdir -p /run/systemd/system/imgctl-booted.service.d
    printf '[Unit]\nWants=imgctl-seed.service\n' > /run/systemd/system/imgctl-booted.service.d/seed.conf
fi
