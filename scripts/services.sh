#!/usr/bin/env bash
# The services the tests use, started on this machine and stopped by PID:
#   dockerd          Docker's engine (log .ci/services/dockerd.log, pidfile dockerd.pid); an engine that
#                    already answers (a developer's, or DOCKER_HOST) is reused and never stopped by us
#   docker-registry  Debian's distribution registry on 127.0.0.1:5000 (storage .ci/services/registry-data)
#   base image       legion-base:bookworm, built in the background (scripts/build-base-image.sh, cached)
#                    while the first tests run; the docker test fixture waits for it on the same lock
# Usage: services.sh start|stop|status. Idempotent: start twice starts nothing twice.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE="$PWD/.ci/services"
REGISTRY_ADDR="${LEGION_REGISTRY_ADDR:-127.0.0.1:5000}"
mkdir -p "$STATE"

log() { echo "services: $*"; }

pid_alive() {  # pid_alive FILE: true when FILE names a live process
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

docker_up() { timeout 10 docker info >/dev/null 2>&1; }

registry_up() { curl -fs -o /dev/null --max-time 2 "http://$REGISTRY_ADDR/v2/"; }

wait_for() {  # wait_for SECONDS WHAT CHECK...: poll CHECK every 0.5 s
  local seconds=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + seconds ))
  until "$@"; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "$what did not come up within ${seconds}s" >&2
      return 1
    fi
    sleep 0.5
  done
}

start_dockerd() {
  if pid_alive "$STATE/dockerd.pid" && docker_up; then
    log "dockerd already running (pid $(cat "$STATE/dockerd.pid"))"
    return
  fi
  if docker_up; then
    rm -f "$STATE/dockerd.pid"
    log "reusing the Docker engine that already answers (${DOCKER_HOST:-unix:///var/run/docker.sock}); not ours to stop"
    return
  fi
  command -v dockerd >/dev/null || { log "dockerd is missing (run scripts/provision/docker.sh)" >&2; return 1; }
  [ "$(id -u)" -eq 0 ] || { log "dockerd needs root; start it yourself or run as root" >&2; return 1; }
  setsid dockerd --host unix:///var/run/docker.sock --pidfile "$STATE/dockerd.engine.pid" \
    >>"$STATE/dockerd.log" 2>&1 </dev/null &
  echo $! >"$STATE/dockerd.pid"
  log "dockerd started (pid $!, log $STATE/dockerd.log)"
  if ! wait_for 60 "dockerd" docker_up; then
    tail -n 20 "$STATE/dockerd.log" >&2
    return 1
  fi
}

start_registry() {
  if pid_alive "$STATE/registry.pid" && registry_up; then
    log "registry already running on $REGISTRY_ADDR (pid $(cat "$STATE/registry.pid"))"
    return
  fi
  if registry_up; then
    rm -f "$STATE/registry.pid"
    log "reusing the registry that already answers on $REGISTRY_ADDR; not ours to stop"
    return
  fi
  command -v docker-registry >/dev/null || { log "docker-registry is missing (run scripts/provision/docker.sh)" >&2; return 1; }
  mkdir -p "$STATE/registry-data"
  cat >"$STATE/registry.yml" <<YAML
version: 0.1
log:
  level: info
  fields:
    service: legion-test-registry
storage:
  filesystem:
    rootdirectory: $STATE/registry-data
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
  headers:
    X-Content-Type-Options: [nosniff]
YAML
  setsid docker-registry serve "$STATE/registry.yml" >>"$STATE/registry.log" 2>&1 </dev/null &
  echo $! >"$STATE/registry.pid"
  log "registry started on $REGISTRY_ADDR (pid $!, log $STATE/registry.log)"
  if ! wait_for 30 "registry" registry_up; then
    tail -n 20 "$STATE/registry.log" >&2
    return 1
  fi
}

start_base_image() {
  if pid_alive "$STATE/base-image.pid"; then
    log "base image build already running (pid $(cat "$STATE/base-image.pid"))"
    return
  fi
  # In the background and niced: debootstrap overlaps the first tests instead of delaying all of them.
  setsid nice -n 10 bash scripts/build-base-image.sh >"$STATE/base-image.log" 2>&1 </dev/null &
  echo $! >"$STATE/base-image.pid"
  log "base image build started in the background (pid $!, log $STATE/base-image.log)"
}

stop_pid() {  # stop_pid NAME: SIGTERM the process group we started, wait up to 30 s, then SIGKILL
  local file="$STATE/$1.pid" pid
  [ -s "$file" ] || return 0
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 60); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$1 (pid $pid) ignored SIGTERM; killing it" >&2
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    log "$1 stopped (pid $pid)"
  fi
  rm -f "$file"
}

case "${1:-}" in
  start)
    start_dockerd
    start_registry
    start_base_image
    ;;
  stop)
    stop_pid base-image
    stop_pid registry
    stop_pid dockerd
    ;;
  status)
    for name in dockerd registry base-image; do
      if pid_alive "$STATE/$name.pid"; then log "$name: running (pid $(cat "$STATE/$name.pid"))"
      else log "$name: not started by us"; fi
    done
    docker_up && log "docker engine answers" || log "docker engine does not answer"
    registry_up && log "registry answers on $REGISTRY_ADDR" || log "registry does not answer on $REGISTRY_ADDR"
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
