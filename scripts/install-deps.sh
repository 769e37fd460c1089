#!/usr/bin/env bash
# install-deps.sh installs the Debian packages imgctl builds, runs and tests with.
# Idempotent: it only calls apt-get when a package is missing, so `make` stays fast.
set -euo pipefail

# One package per line; owners add what their code or tests exec.
packages=(
  gcc libc6-dev pkg-config make git ca-certificates
  libsqlite3-dev libseccomp-dev libgpgme-dev
  uidmap iproute2 file cpio curl attr libcap2-bin zstd
  mmdebstrap debootstrap
  squashfs-tools squashfs-tools-ng erofs-utils
  qemu-system-x86 qemu-utils ipxe-qemu ipxe
  skopeo docker-registry
  openipmi ipmitool
  isc-dhcp-client busybox tftp-hpa tftpd-hpa dnsmasq ndisc6
  nfs-ganesha nfs-ganesha-vfs
  openssh-server openssh-client
  wrk hyperfine
  postgresql
  kea-dhcp4-server nginx-light
  chromium
  aria2 opentracker mktorrent
  udpcast iptables
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Servers installed only as test baselines (nginx, Kea, dnsmasq, …) must not
  # start as system services: policy-rc.d tells the package scripts so.
  policy=/usr/sbin/policy-rc.d
  own_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
  fi
  trap '[ -n "$own_policy" ] && rm -f "$policy"' EXIT
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Go: Debian 12's golang is too old for our modules; use the toolchain under /usr/local/go.
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
  echo "install-deps: Go >= 1.24 is required (expected at /usr/local/go/bin/go)" >&2
  exit 1
fi
