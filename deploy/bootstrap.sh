#!/usr/bin/env bash
# Install what ticketstream needs on a fresh Debian machine, reusing what is already there:
# system packages (Java 17+ and Maven for the embedded Kafka broker; with --with-monitoring also
# Prometheus and Alertmanager, whose promtool and amtool the tests use, and PostgreSQL, whose
# server the archive tests start on loopback in a throwaway cluster),
# a Python 3.11+ virtualenv in .venv with the project and its test extras.
# Safe to run again: every step checks before it installs.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
java_ok() { command -v java >/dev/null && java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'; }
java_ok || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || need_apt+=(python3 python3-venv)
python3 -m venv --help >/dev/null 2>&1 || need_apt+=(python3-venv)
if [[ "${1:-}" == "--with-monitoring" ]]; then
  # The test suite checks the monitoring files with promtool and amtool and runs a real Prometheus.
  command -v promtool >/dev/null || need_apt+=(prometheus)
  command -v amtool >/dev/null || need_apt+=(prometheus-alertmanager)
  # Debian keeps the server binaries off PATH, under /usr/lib/postgresql/<version>/bin.
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
  # The deploy tests validate deploy/compose with `docker-compose config` (Debian's, no engine needed)
  # and build helm from the Go module proxy below.
  command -v docker-compose >/dev/null || need_apt+=(docker-compose)
fi
if ((${#need_apt[@]})); then
  echo "bootstrap: installing Debian packages: ${need_apt[*]}"
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [[ ! -x .venv/bin/python ]]; then
  echo "bootstrap: creating the virtualenv .venv"
  python3 -m venv .venv
fi
stamp=.venv/.ticketstream-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  echo "bootstrap: installing ticketstream and its dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test,train]'
  touch "$stamp"
fi

# helm for `helm lint` / `helm template` of deploy/helm in the tests: a Go program, built from
# the Go module proxy into .venv/bin (a pinned release; the module cache makes later builds quick).
HELM_VERSION=v3.22.0
# (`helm version` of a `go install` build prints only "v3.22", so a stamp records the release.)
helm_stamp=.venv/.helm-${HELM_VERSION}
if [[ "${1:-}" == "--with-monitoring" && ( ! -x .venv/bin/helm || ! -f $helm_stamp ) ]]; then
  # Debian's golang-go (1.19) is too old for helm 3.22 (Go >= 1.24): use the machine's Go toolchain.
  command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"  # the official toolchain's usual place
  command -v go >/dev/null || { echo "bootstrap: helm is built with Go >= 1.24, and no 'go' is on PATH" >&2; exit 1; }
  echo "bootstrap: building helm ${HELM_VERSION} into .venv/bin (go install, a few minutes the first time)"
  GOBIN="$PWD/.venv/bin" GOFLAGS=-buildvcs=false go install "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
  touch "$helm_stamp"
fi
