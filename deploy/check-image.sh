#!/usr/bin/env bash
# The image check CI runs after `make test` (.ci/run), runnable alone: builds the image with
# `make image`, runs `sq --help` in it, starts `sq broker` and `sq gateway` from it on free loopback
# ports, checks that the gateway answers /healthz (also through the image's own HEALTHCHECK command)
# and that the gateway and the broker run as uid 10001, then stops both with SIGTERM and expects a
# clean exit.
#
# Usage: deploy/check-image.sh [--no-build]   (--no-build: check $SQ_IMAGE as it is, without make image)
#
# Skips (exit 0, saying why) only when no engine can be had: no Docker engine and buildah cannot be
# installed (not root, or no apt-get). Once the build starts, any failure fails the check (exit 1).
# With buildah, commands start with `buildah run --isolation chroot` on a working container
# (`podman run` fails on these machines on rlimits); chroot isolation shares the host's network.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'image-check [%4ss]: %s\n' "$SECONDS" "$*"; }
fail() { say "FAIL: $*"; exit 1; }
expected_uid=10001
health_deadline=${SQ_IMAGE_CHECK_DEADLINE:-120}   # seconds for the gateway to answer /healthz
SQ_IMAGE=$(deploy/build-image.sh --print-image)   # the tag make image builds ($SQ_IMAGE or the default)
export SQ_IMAGE
export BUILDAH_ISOLATION=chroot

tools_rc=0
tools_out=$(deploy/build-image.sh --tools-only 2>&1) || tools_rc=$?
[ -z "$tools_out" ] || printf '%s\n' "$tools_out"
if [ "$tools_rc" = 3 ]; then
  say "SKIP: no container engine can be had here, so the image was not built (${tools_out##*build-image: })"
  exit 0
elif [ "$tools_rc" != 0 ]; then
  fail "deploy/build-image.sh --tools-only exited $tools_rc"
fi

if [ "${1:-}" = --no-build ]; then
  say "checking $SQ_IMAGE as built (--no-build)"
else
  say "building $SQ_IMAGE (make image)"
  make image || fail "make image failed (the build log is above)"
  say "built $SQ_IMAGE"
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
nats_port=$(free_port)
monitor_port=$(free_port)
http_port=$(free_port)
logs=$(mktemp -d "${TMPDIR:-/tmp}/sq-image-check.XXXXXX")

# Polls /healthz until it answers 200, the deadline passes, or process $1 (what started the
# gateway; 0 for none) has exited, so that a gateway dying at start fails at once.
wait_healthz() {
  local url="http://127.0.0.1:$http_port/healthz"
  python3 - "$url" "$health_deadline" "${1:-0}" <<'EOF'
"""Poll the gateway's /healthz until it answers 200, the deadline passes or its starter exits."""
import json, pathlib, sys, time, urllib.error, urllib.request
url, deadline, starter = sys.argv[1], time.monotonic() + float(sys.argv[2]), int(sys.argv[3])


def exited(pid: int) -> bool:
    """Whether the process is gone or a zombie (the shell has not reaped it yet)."""
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


last = "no answer"
while time.monotonic() < deadline:
    if starter and exited(starter):
        print(f"the gateway's process exited before {url} answered; last: {last}")
        sys.exit(1)
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            body = json.loads(response.read())
            if response.status == 200 and body.get("status") == "ok":
                print(f"{url} -> {response.status} {body}")
                sys.exit(0)
            last = f"{response.status} {body}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        last = repr(exc)
    time.sleep(0.5)
print(f"{url} did not answer 200 before the deadline; last: {last}")
sys.exit(1)
EOF
}

# Prints "uid uid uid uid" (real, effective, saved, filesystem) of a process.
uids_of() { awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$1/status"; }

# --- docker -----------------------------------------------------------------------------------
check_with_docker() {
  local broker="sq-image-check-broker-$$" gateway="sq-image-check-gateway-$$"
  trap 'docker rm -f "$gateway" "$broker" >/dev/null 2>&1 || true; rm -rf "$logs"' EXIT
  local help
  help=$(docker run --rm "$SQ_IMAGE" --help) || fail "sq --help failed in the image"
  grep -q '^usage: sq' <<<"$help" || fail "sq --help in the image printed no usage"
  say "sq --help ran in the image"
  docker run -d --name "$broker" --network host "$SQ_IMAGE" broker --port "$nats_port" \
    --monitor-port "$monitor_port" --store-dir /var/lib/sq/nats >/dev/null
  docker run -d --name "$gateway" --network host "$SQ_IMAGE" gateway --host 127.0.0.1 \
    --http-port "$http_port" --nats-url "nats://127.0.0.1:$nats_port" --data-dir /var/lib/sq/gateway >/dev/null
  wait_healthz || { docker logs "$broker"; docker logs "$gateway"; fail "the gateway did not answer /healthz"; }
  local name uids
  for name in "$gateway" "$broker"; do
    uids=$(docker exec "$name" awk '/^Uid:/ {print $2, $3, $4, $5}' /proc/1/status)
    [ "$uids" = "$expected_uid $expected_uid $expected_uid $expected_uid" ] \
      || fail "$name's process runs as uids '$uids', expected $expected_uid"
    say "$name runs as uid $expected_uid (real, effective, saved, fs)"
  done
  docker stop -t 20 "$gateway" "$broker" >/dev/null
  for name in "$gateway" "$broker"; do
    [ "$(docker inspect --format '{{.State.ExitCode}}' "$name")" = 0 ] \
      || { docker logs "$name"; fail "$name did not exit cleanly on SIGTERM"; }
  done
  say "gateway and broker stopped cleanly on SIGTERM"
}

# --- buildah ----------------------------------------------------------------------------------
container=""
broker_job=""
gateway_job=""

cleanup_buildah() {
  local job
  for job in $gateway_job $broker_job; do
    if kill -0 "$job" 2>/dev/null; then
      kill -TERM "$job" 2>/dev/null || say "could not signal buildah run $job"
      wait "$job" 2>/dev/null || true   # its status was already judged, or the check has failed
    fi
  done
  if [ -n "$container" ]; then
    buildah rm "$container" >/dev/null || say "could not remove the working container $container"
  fi
  rm -rf "$logs"
}

# The pid of the process started by `buildah run` (pid $1) whose command line contains $2.
find_in_image() {
  local root=$1 pattern=$2 pid children
  local queue=("$root")
  while [ ${#queue[@]} -gt 0 ]; do
    pid=${queue[0]}
    queue=("${queue[@]:1}")
    if [ "$pid" != "$root" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern" \
       && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q '^buildah'; then
      echo "$pid"
      return 0
    fi
    children=$(ps -o pid= --ppid "$pid" || true)   # ps exits 1 when there is none
    for child in $children; do queue+=("$child"); done
  done
  return 1
}

check_uid_of() {
  local name=$1 pid=$2 uids root
  uids=$(uids_of "$pid")
  root=$(readlink "/proc/$pid/root")
  [ "$root" != / ] || fail "$name (pid $pid) runs in the host's root, not the image's"
  [ "$uids" = "$expected_uid $expected_uid $expected_uid $expected_uid" ] \
    || fail "$name (pid $pid) runs as uids '$uids', expected $expected_uid"
  say "$name (pid $pid, root $root) runs as uid $expected_uid (real, effective, saved, fs)"
}

# Sends SIGTERM to the process in the image and expects its `buildah run` to exit 0.
stop_cleanly() {
  local name=$1 pid=$2 job=$3 rc=0
  kill -TERM "$pid"
  wait "$job" || rc=$?
  if [ "$job" = "$gateway_job" ]; then gateway_job=""; else broker_job=""; fi
  [ "$rc" = 0 ] || { tail -n 20 "$logs/$name.log"; fail "$name exited $rc on SIGTERM"; }
  say "$name stopped cleanly on SIGTERM"
}

check_with_buildah() {
  trap cleanup_buildah EXIT
  container=$(buildah from --name "sq-image-check-$$" "$SQ_IMAGE")
  local run=(buildah run --network host "$container" --)

  "${run[@]}" sq --help >"$logs/help.log" || { cat "$logs/help.log"; fail "sq --help failed in the image"; }
  grep -q '^usage: sq' "$logs/help.log" || fail "sq --help in the image printed no usage"
  say "sq --help ran in the image"
  local uid
  uid=$("${run[@]}" id -u)
  [ "$uid" = "$expected_uid" ] || fail "commands in the image run as uid $uid, expected $expected_uid"
  say "the image's user is uid $uid"

  "${run[@]}" sq broker --port "$nats_port" --monitor-port "$monitor_port" --store-dir /var/lib/sq/nats \
    >"$logs/broker.log" 2>&1 &
  broker_job=$!
  "${run[@]}" sq gateway --host 127.0.0.1 --http-port "$http_port" --nats-url "nats://127.0.0.1:$nats_port" \
    --data-dir /var/lib/sq/gateway >"$logs/gateway.log" 2>&1 &
  gateway_job=$!
  say "started sq broker (nats $nats_port) and sq gateway (http $http_port) in the image"
  if ! wait_healthz "$gateway_job"; then
    say "broker log:"; tail -n 20 "$logs/broker.log"
    say "gateway log:"; tail -n 40 "$logs/gateway.log"
    fail "the gateway did not answer /healthz (deadline ${health_deadline}s)"
  fi

  # The image's own HEALTHCHECK command, run in the image against the gateway's port.
  local probe_argv=()
  mapfile -t probe_argv < <(buildah inspect --type image "$SQ_IMAGE" | python3 -c '
import json, sys
check = (json.load(sys.stdin)["Docker"]["config"] or {}).get("Healthcheck") or {}
test = check.get("Test") or []
if test[:1] == ["CMD"]:
    print("\n".join(test[1:]))
')
  [ ${#probe_argv[@]} -ge 2 ] || fail "the image has no exec-form HEALTHCHECK (built in OCI format, which drops it?)"
  "${run[@]}" env SQ_HEALTH_PORT="$http_port" "${probe_argv[@]}" || fail "the image's HEALTHCHECK command failed against the gateway"
  say "the image's HEALTHCHECK command passes against the gateway"

  local gateway_pid broker_pid
  gateway_pid=$(find_in_image "$gateway_job" "sq gateway") || fail "no sq gateway process under buildah run $gateway_job"
  broker_pid=$(find_in_image "$broker_job" "nats-server") || fail "no nats-server process under buildah run $broker_job"
  check_uid_of "sq gateway" "$gateway_pid"
  check_uid_of "nats-server" "$broker_pid"

  stop_cleanly gateway "$gateway_pid" "$gateway_job"
  broker_pid=$(find_in_image "$broker_job" "sq broker") || fail "no sq broker process under buildah run $broker_job"
  stop_cleanly broker "$broker_pid" "$broker_job"
}

engine=$(deploy/build-image.sh --print-engine)
case "$engine" in
  docker) check_with_docker ;;
  *) check_with_buildah ;;
esac
say "PASS: $SQ_IMAGE builds, runs sq --help, and serves /healthz from sq gateway as uid $expected_uid"
