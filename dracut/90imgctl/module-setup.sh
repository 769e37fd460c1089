#!/bin/bash
# imgctl dracut module: boots a diskless node from imgctl's boot service.
# Live mode: the agent fetches the root image, verifies every piece against the
# artifact manifest, and dmsquash-live mounts it under a RAM overlay.
# NFS mode: dracut's nfs module mounts the root (root=nfs4:… rootovl).
# Both: the node's overlay archive is copied onto the new root and the node
# phones home to the boot service.

check() {
    # Only when asked for (imgctl adds it with --add imgctl).
    return 255
}

depends() {
    echo network-legacy network url-lib dmsquash-live nfs
    return 0
}

install() {
    inst_simple "$moddir/imgctl-agent" /usr/bin/imgctl-agent
    inst_script "$moddir/imgctlroot.sh" /sbin/imgctlroot
    inst_hook cmdline 90 "$moddir/parse-imgctl.sh"
    inst_hook pre-mount 10 "$moddir/imgctl-premount.sh"
    inst_hook pre-pivot 90 "$moddir/imgctl-prepivot.sh"
    inst_multiple -o cp mkdir ln sleep poweroff
}
