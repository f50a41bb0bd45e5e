#!/usr/bin/env bash
# Builds the ShrivenQuant image from deploy/Dockerfile (`make image` runs this).
#
# With a Docker engine (`docker info` answers) it is a plain `docker build`. Without one it uses
# buildah with chroot isolation, which needs no daemon; the `PYTHON_IMAGE` base is then made here
# from Debian bookworm by debootstrap (python3 3.11 + venv), because no container registry is
# reachable from these machines (only Debian, PyPI and npm are). That base is built once and
# reused by every later build (its tag carries a hash of its recipe); `buildah rmi` it to pick up
# newer Debian security updates.
#
# pip inside the build trusts the same CA bundle as pip outside ($PIP_CERT, else $SSL_CERT_FILE,
# else the system bundle): it is handed to the build as a secret, mounted only while pip runs,
# never stored in a layer. $PIP_INDEX_URL, when set, is passed as the build argument of that name.
#
# Usage: deploy/build-image.sh [--tools-only | --print-engine | --print-image]
#   --tools-only    only make sure an engine is usable (installs buildah and debootstrap with apt-get
#                   when root); exit 3 when neither can be had, 0 otherwise
#   --print-engine  print the engine a build would use (docker or buildah) and exit
#   --print-image   print the tag a build would make and exit
# Environment: SQ_IMAGE (tag, default shrivenquant:<version>; buildah stores it as localhost/…),
# SQ_IMAGE_ENGINE (docker or buildah, to force one), SQ_DEBIAN_MIRROR (default http://deb.debian.org/debian).
# Exit status: 0 built; 3 no engine and the tools cannot be installed (nothing was tried); other
# non-zero: the build started and failed.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
image=${SQ_IMAGE:-shrivenquant:$version}
mirror=${SQ_DEBIAN_MIRROR:-http://deb.debian.org/debian}
base_suite=bookworm
# python-is-python3: the Dockerfile (like python:3.11-slim) calls `python`.
base_packages=python3,python3-venv,python-is-python3,ca-certificates
# Bump base_revision when the base recipe below changes in a way the package list does not show.
base_revision=1
base_image=localhost/sq-python-base:$base_suite-$(printf '%s %s %s' "$base_suite" "$base_packages" "$base_revision" | sha256sum | cut -c1-12)

# Every line carries the seconds since the start, so a slow phase shows in the CI log.
log() { printf 'build-image [%4ss]: %s\n' "$SECONDS" "$*"; }

pick_engine() {
  if [ -n "${SQ_IMAGE_ENGINE:-}" ]; then
    echo "$SQ_IMAGE_ENGINE"
  elif command -v docker >/dev/null 2>&1 && timeout 30 docker info >/dev/null 2>&1; then
    echo docker
  else
    echo buildah
  fi
}

# Returns 3 (with the reason on stderr) when buildah or debootstrap is missing and cannot be installed.
ensure_buildah_tools() {
  local missing=()
  command -v buildah >/dev/null 2>&1 || missing+=(buildah)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    echo "build-image: no Docker engine answers and ${missing[*]} not installed; installing needs root and apt-get (install buildah and debootstrap, or start a Docker engine)" >&2
    return 3
  fi
  log "installing ${missing[*]} with apt-get"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
    echo "build-image: apt-get could not install ${missing[*]}" >&2
    return 3
  fi
}

host_ca_bundle() {
  local candidate
  for candidate in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
    if [ -n "$candidate" ] && [ -s "$candidate" ]; then
      echo "$candidate"
      return 0
    fi
  done
}

build_base() {
  local ctr mnt
  log "making the Python base $base_image: debootstrap $base_suite ($base_packages) from $mirror"
  ctr=$(buildah from --name "sq-base-build-$$" scratch)
  # The half-made container goes whatever happens; the committed image is all that is kept.
  trap 'buildah rm "sq-base-build-$$" >/dev/null 2>&1 || true' EXIT
  mnt=$(buildah mount "$ctr")
  # debootstrap's few hundred progress lines go to a file, shown only when it fails.
  local bootstrap_log
  bootstrap_log=$(mktemp "${TMPDIR:-/tmp}/sq-debootstrap.XXXXXX")
  if ! debootstrap --variant=minbase --include="$base_packages" "$base_suite" "$mnt" "$mirror" >"$bootstrap_log" 2>&1; then
    tail -n 40 "$bootstrap_log" >&2
    echo "build-image: debootstrap of $base_suite from $mirror failed (full log: $bootstrap_log)" >&2
    return 1
  fi
  rm -f "$bootstrap_log"
  log "debootstrap done; applying $base_suite-security updates"
  # Security fixes published since the point release debootstrap installed, as python:3.11-slim has.
  cat >"$mnt/etc/apt/sources.list" <<EOF
deb $mirror $base_suite main
deb $mirror $base_suite-updates main
deb http://deb.debian.org/debian-security $base_suite-security main
EOF
  # The host's hostname and resolver are not the image's (buildah and docker provide their own).
  rm -f "$mnt/etc/hostname" "$mnt/etc/resolv.conf"
  buildah umount "$ctr" >/dev/null
  buildah run --isolation chroot "$ctr" -- sh -c \
    'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq >/dev/null \
     && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin'
  buildah config --env LANG=C.UTF-8 \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd python3 \
    --label org.opencontainers.image.description="Debian $base_suite with python3 and venv, made by deploy/build-image.sh" \
    "$ctr"
  buildah commit --rm "$ctr" "$base_image" >/dev/null
  trap - EXIT
  log "base $base_image committed"
}

build_with_buildah() {
  if buildah inspect --type image "$base_image" >/dev/null 2>&1; then
    log "reusing the Python base $base_image"
  else
    build_base
  fi
  # docker format: the OCI format has no HEALTHCHECK and would drop the Dockerfile's.
  local args=(--isolation chroot --layers --force-rm --format docker
              -f deploy/Dockerfile --ignorefile deploy/Dockerfile.dockerignore --build-arg "PYTHON_IMAGE=$base_image" -t "$image")
  local ca
  ca=$(host_ca_bundle)
  [ -n "$ca" ] && args+=(--secret "id=pip_cert,src=$ca")
  [ -n "${PIP_INDEX_URL:-}" ] && args+=(--build-arg "PIP_INDEX_URL=$PIP_INDEX_URL")
  log "buildah bud ${args[*]} ."
  buildah bud "${args[@]}" .
}

build_with_docker() {
  local args=(-f deploy/Dockerfile -t "$image")
  local ca
  ca=$(host_ca_bundle)
  [ -n "$ca" ] && args+=(--secret "id=pip_cert,src=$ca")
  [ -n "${PIP_INDEX_URL:-}" ] && args+=(--build-arg "PIP_INDEX_URL=$PIP_INDEX_URL")
  log "docker build ${args[*]} ."
  DOCKER_BUILDKIT=1 docker build "${args[@]}" .
}

if [ "${1:-}" = --print-image ]; then
  echo "$image"
  exit 0
fi
engine=$(pick_engine)
if [ "${1:-}" = --print-engine ]; then
  echo "$engine"
  exit 0
fi
case "$engine" in
  docker) [ "${1:-}" = --tools-only ] && exit 0; build_with_docker ;;
  buildah)
    ensure_buildah_tools || exit $?
    [ "${1:-}" = --tools-only ] && exit 0
    build_with_buildah ;;
  *) echo "build-image: SQ_IMAGE_ENGINE must be docker or buildah, got '$engine'" >&2; exit 2 ;;
esac
log "built $image with $engine"
