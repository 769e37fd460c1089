# Source this before running go commands by hand: `. scripts/env.sh`.
# It sets what the Makefile sets (cgo and build tags for buildah/containers).
export PATH=/usr/local/go/bin:$PATH
export CGO_ENABLED=1
export GOFLAGS=-tags=containers_image_openpgp,exclude_graphdriver_btrfs,exclude_graphdriver_devicemapper,libsqlite3
