#!/bin/bash
# imgctl dracut module: network root (live squashfs or NFS) for diskless nodes.

check() {
    # Only when asked for explicitly (imgctl passes --add imgctl).
    return 255
}

depends() {
    echo network url-lib
}

install() {
    inst_multiple -o curl sha256sum
}
