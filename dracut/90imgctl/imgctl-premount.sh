#!/bin/sh
# pre-mount hook: dracut 059's overlayfs setup expects these to exist before
# the live root is mounted ("failed to resolve '/run/overlayfs'").
mkdir -p /run/overlayfs /run/ovlwork
