#!/bin/sh
# cmdline hook: read imgctl.* arguments; in live mode claim the root so that
# dracut waits for the network and calls /sbin/imgctlroot (netroot handler).

command -v getarg >/dev/null || . /lib/dracut-lib.sh

eval "$(imgctl-agent cmdline)"
[ -n "$IMGCTL_URL" ] || return 0

case "${IMGCTL_MODE:-live}" in
    live)
        [ -n "$IMGCTL_ROOT" ] || die "imgctl: live mode without imgctl.root"
        info "imgctl: live root $IMGCTL_ROOT"
        # dmsquash-live reads its options through getarg, which also reads
        # /etc/cmdline.d: our root image is a plain squashfs of the root,
        # mounted read-only under an overlayfs with a tmpfs upper.
        mkdir -p /etc/cmdline.d
        echo "rd.live.overlay.overlayfs=1" > /etc/cmdline.d/90imgctl-live.conf
        netroot="imgctl:$IMGCTL_ROOT"
        root="imgctl"
        rootok=1
        wait_for_dev -n /dev/root
        ;;
    nfs)
        info "imgctl: NFS root, mounted by dracut's nfs module"
        ;;
    *)
        die "imgctl: unknown imgctl.mode=$IMGCTL_MODE"
        ;;
esac
