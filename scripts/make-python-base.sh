#!/usr/bin/env bash
# Make the base image of examples/flask offline: a Debian bookworm minbase rootfs with Python,
# pip and Flask, standing in for Docker Hub's python:3.7.12-slim (there is no registry here).
#
# Usage: make-python-base.sh [--import] [OUT]     (OUT defaults to /var/cache/dockyard/python-base.tar)
#
#   --import   also import OUT into Dockyard (the data root of $DOCKYARD_ROOT, as the CLI does) as
#              python:3.7.12-slim, unless an image of that name is already there.
#
# Packages come only from this machine's own Debian apt sources (/etc/apt/sources.list.d/debian.sources,
# or /etc/apt/sources.list; override with DOCKYARD_APT_SOURCES=FILE), never from another host.
# PEP 668's EXTERNALLY-MANAGED marker is removed so that the Dockerfile's
# `pip install -r requirements.txt` finds flask already satisfied (from python3-flask) and never
# needs the network.  The tar is cached: it is built (about 30-40 s) only when OUT is missing.
# Quiet unless something fails; then the log is printed and the exit status is non-zero.
set -euo pipefail

IMAGE=python:3.7.12-slim
PACKAGES=python3,python3-pip,python3-flask,python-is-python3
DOCKYARD_PY=${DOCKYARD_PYTHON:-/opt/dockyard/bin/python}
REPO=$(cd "$(dirname "$0")/.." && pwd)

do_import=0
out=
for a in "$@"; do
    case "$a" in
        --import) do_import=1 ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "make-python-base: unknown option $a" >&2; exit 2 ;;
        *) [ -z "$out" ] || { echo "make-python-base: one OUT only" >&2; exit 2; }; out=$a ;;
    esac
done
out=${out:-/var/cache/dockyard/python-base.tar}

log=$(mktemp /tmp/make-python-base.XXXXXX.log)
fail() { echo "make-python-base: $*" >&2; cat "$log" >&2; rm -f "$log"; exit 1; }
tmp="${out%.tar}.tmp-$$.tar"
trap 'rm -f "$log" "$tmp"' EXIT

if [ ! -s "$out" ]; then
    [ "$(id -u)" = 0 ] || fail "must run as root to build $out"
    if ! command -v mmdebstrap >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q mmdebstrap >>"$log" 2>&1 \
            || fail "could not install mmdebstrap with apt-get"
    fi
    sources=${DOCKYARD_APT_SOURCES:-}
    if [ -z "$sources" ]; then
        for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
            if [ -s "$f" ]; then sources=$f; break; fi
        done
    fi
    [ -n "$sources" ] || fail "no Debian apt sources found on this machine (set DOCKYARD_APT_SOURCES)"
    mkdir -p "$(dirname "$out")"
    # A fixed SOURCE_DATE_EPOCH: the same package versions give the same tar bytes (same diffID).
    SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000} \
    mmdebstrap --format=tar --variant=minbase --include="$PACKAGES" \
        --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' \
        --customize-hook='test -x "$1"/usr/bin/python && chroot "$1" python -c "import flask"' \
        bookworm "$tmp" "$sources" >>"$log" 2>&1 \
        || fail "mmdebstrap failed (sources: $sources)"
    [ -f "$tmp" ] || fail "mmdebstrap made no tar at $tmp"
    listing=$(tar -tf "$tmp") || fail "$tmp is not a readable tar"
    case "$listing" in
        *EXTERNALLY-MANAGED*) fail "EXTERNALLY-MANAGED is still in $tmp" ;;
    esac
    mv -f "$tmp" "$out"
fi

if [ "$do_import" = 1 ]; then
    dy() { PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}" "$DOCKYARD_PY" -m dockyard "$@"; }
    if ! dy image inspect "$IMAGE" >/dev/null 2>&1; then
        dy import "$out" "$IMAGE" \
            -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            -c 'CMD ["python3"]' >>"$log" 2>&1 \
            || fail "dockyard import $out $IMAGE failed"
    fi
fi
rm -f "$log"
