#!/usr/bin/env bash
# Builds the lab-only stand-ins for the tls/random/command provider plugins (see README.md here)
# and installs them into the PULUMI_HOME that `lab/toolchain.sh env` sets:
#   lab/providers/build.sh          build + install (default; "up to date" when nothing changed)
#   lab/providers/build.sh test     go vet + go test (the ssh tests start /usr/sbin/sshd on 127.0.0.1)
#   lab/providers/build.sh e2e      build + install, then the end-to-end Pulumi program (e2e/run.sh)
#   lab/providers/build.sh all      build + install, test, e2e
# Binaries go to ${KUBEHA_CACHE:-$HOME/.cache/kubeha}/providers/; nothing is written into the repo.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$(cd "$HERE/.." && pwd)
CACHE=${KUBEHA_CACHE:-$HOME/.cache/kubeha}
OUT=$CACHE/providers
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
export GOFLAGS="${GOFLAGS:-} -mod=mod"
# Versions the npm SDKs (@pulumi/tls 5.6.1, @pulumi/random 4.21.2, @pulumi/command 1.2.1) ask for.
PLUGINS=(tls:5.6.1 random:4.21.2 command:1.2.1)

log() { printf '[providers] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

eval "$(bash "$LAB/toolchain.sh" env)"
command -v go >/dev/null || die "go is not on PATH"

src_key() {
  (cd "$HERE" && find . -name '*.go' -o -name go.mod -o -name go.sum | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -c1-16
}

installed() { # name version
  [[ -x $PULUMI_HOME/plugins/resource-$1-v$2/pulumi-resource-$1 ]] &&
    cmp -s "$PULUMI_HOME/plugins/resource-$1-v$2/pulumi-resource-$1" "$OUT/pulumi-resource-$1"
}

do_build() {
  command -v pulumi >/dev/null || die "pulumi is not built yet: run lab/toolchain.sh pulumi first"
  local key stamp=$OUT/.stamp ok=1 p name ver t0=$SECONDS
  key="$(src_key) $(go env GOVERSION)"
  for p in "${PLUGINS[@]}"; do
    name=${p%%:*}; ver=${p##*:}
    [[ -x $OUT/pulumi-resource-$name ]] && installed "$name" "$ver" || ok=0
  done
  if ((ok)) && [[ -f $stamp && "$(cat "$stamp")" == "$key" ]]; then
    log "up to date ($key)"
    return 0
  fi
  mkdir -p "$OUT"
  log "building into $OUT"
  for p in "${PLUGINS[@]}"; do
    name=${p%%:*}
    (cd "$HERE" && CGO_ENABLED=0 nice -n "${KUBEHA_NICE:-10}" go build -trimpath -ldflags "-s -w" \
      -o "$OUT/pulumi-resource-$name" "./cmd/pulumi-resource-$name")
  done
  for p in "${PLUGINS[@]}"; do
    name=${p%%:*}; ver=${p##*:}
    pulumi plugin install resource "$name" "$ver" --file "$OUT/pulumi-resource-$name" --reinstall >&2
    installed "$name" "$ver" || die "pulumi-resource-$name $ver is not in $PULUMI_HOME/plugins after install"
  done
  printf '%s' "$key" >"$stamp"
  log "installed tls 5.6.1, random 4.21.2, command 1.2.1 (lab stand-ins) into $PULUMI_HOME in $((SECONDS - t0))s"
}

do_test() {
  (cd "$HERE" && go vet ./... && go test -count=1 ./...)
}

do_e2e() {
  bash "$HERE/e2e/run.sh"
}

case ${1:-build} in
  build) do_build ;;
  test) do_test ;;
  e2e) do_build; do_e2e ;;
  all) do_build; do_test; do_e2e ;;
  *) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
