#!/usr/bin/env bash
# The test base image: no registry can be reached from these machines, so python:3.11-slim is
# stood in for by Debian bookworm (python3 3.11) made with debootstrap and imported into Docker.
# The root filesystem tarball is cached between runs; the image itself stays in Docker's store.
# What is pinned: the Debian release (bookworm), the variant and packages below, and Python's minor version
# (3.11, as the production base python:3.11.13-slim-bookworm@sha256:... in the Dockerfile), checked in the
# tree. A debootstrap from a live mirror is not byte-reproducible (Debian's point releases move it), so the
# tarball's sha256 is recorded instead: in the image's label reelforge.rootfs.sha256 and printed by each run.
set -euo pipefail
IMAGE=${1:-reelforge-base:bookworm}
CACHE=${REELFORGE_DEPLOY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/reelforge-deploy}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "base image $IMAGE present (rootfs sha256 $(docker image inspect -f '{{index .Config.Labels "reelforge.rootfs.sha256"}}' "$IMAGE"))"
    exit 0
fi
mkdir -p "$CACHE"
TARBALL="$CACHE/bookworm-minbase-python3.tar"
if [ ! -s "$TARBALL" ]; then
    ROOT=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    echo "debootstrap bookworm into $ROOT (once; cached in $TARBALL)"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$ROOT" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
        || { tail -20 "$CACHE/debootstrap.log"; exit 1; }
    rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*
    test -x "$ROOT/usr/bin/python3.11" || { echo "bookworm's python3 is not 3.11: the production base is"; exit 1; }
    tar -C "$ROOT" -cf "$TARBALL.tmp" .
    mv "$TARBALL.tmp" "$TARBALL"
    rm -rf "$ROOT"
fi
SUM=$(sha256sum "$TARBALL" | cut -d' ' -f1)
docker import --change "LABEL reelforge.rootfs.sha256=$SUM" --change "LABEL reelforge.rootfs.suite=bookworm" "$TARBALL" "$IMAGE" >/dev/null
echo "base image $IMAGE imported from $TARBALL (sha256 $SUM)"
