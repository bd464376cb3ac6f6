#!/usr/bin/env bash
# Builds the kubeha toolchain from Go modules (the only source of binaries on a machine that reaches
# package registries but no download sites):
#   lab/toolchain.sh pulumi   Pulumi CLI + Node.js language host (+ provider plugins when obtainable)
#   lab/toolchain.sh cluster  etcd, Kubernetes, flannel, CNI plugins, containerd, runc (linux/amd64)
#   lab/toolchain.sh images   pause, CoreDNS, metrics-server image archives (ctr images import)
#   lab/toolchain.sh all      all three
#   lab/toolchain.sh env      prints export lines: eval "$(lab/toolchain.sh env)"
#   lab/toolchain.sh status   prints what is built
# Everything goes to ${KUBEHA_CACHE:-$HOME/.cache/kubeha}; nothing is written into the repo.
# Every step has a stamp: a re-run with the same versions and flags does nothing.
# Go's own caches (GOPATH/GOCACHE/GOMODCACHE) stay at the machine defaults so re-runs are warm.
set -euo pipefail

# ---- versions (override by env) -------------------------------------------------------------
PULUMI_VERSION=${PULUMI_VERSION:-3.276.0}
PULUMI_COMMAND_VERSION=${PULUMI_COMMAND_VERSION:-1.2.1}
PULUMI_TLS_VERSION=${PULUMI_TLS_VERSION:-5.6.1}
PULUMI_RANDOM_VERSION=${PULUMI_RANDOM_VERSION:-4.21.2}
# Optional: a directory holding prebuilt pulumi-resource-{command,tls,random} binaries of the versions
# above (see "plugins" below: their Go modules are not served by this machine's module proxy).
KUBEHA_PLUGIN_DIR=${KUBEHA_PLUGIN_DIR:-}

ETCD_VERSION=${ETCD_VERSION:-v3.6.8}
K8S_VERSION=${K8S_VERSION:-v1.37.2}
FLANNEL_VERSION=${FLANNEL_VERSION:-v0.28.10}
CNI_PLUGINS_VERSION=${CNI_PLUGINS_VERSION:-v1.10.0}
# flannel CNI plugin: github.com/flannel-io/cni-plugin is not served by the module proxy here; the
# same plugin (plugins/meta/flannel) lived in containernetworking/plugins up to v0.9.1.
FLANNEL_CNI_MODULE=${FLANNEL_CNI_MODULE:-github.com/containernetworking/plugins}
FLANNEL_CNI_VERSION=${FLANNEL_CNI_VERSION:-v0.9.1}
FLANNEL_CNI_PKG=${FLANNEL_CNI_PKG:-plugins/meta/flannel}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2}
RUNC_VERSION=${RUNC_VERSION:-v1.5.3}
# seccomp support in runc needs libseccomp (cgo); RUNC_SECCOMP=0 builds without it.
RUNC_SECCOMP=${RUNC_SECCOMP:-1}

# Container images the cluster pulls (no registry is reachable from the lab: they are built from
# source and imported with `ctr -n k8s.io images import`). Each archive is tagged with the reference
# the cluster asks for (kubeha's sandboxImage, coreDnsImage and metricsServerImage defaults).
PAUSE_IMAGE=${PAUSE_IMAGE:-registry.k8s.io/pause:3.10.1}
COREDNS_VERSION=${COREDNS_VERSION:-v1.13.1}
COREDNS_IMAGE=${COREDNS_IMAGE:-registry.k8s.io/coredns/coredns:$COREDNS_VERSION}
METRICS_SERVER_VERSION=${METRICS_SERVER_VERSION:-v0.8.0}
METRICS_SERVER_IMAGE=${METRICS_SERVER_IMAGE:-registry.k8s.io/metrics-server/metrics-server:$METRICS_SERVER_VERSION}

# ---- layout -----------------------------------------------------------------------------------
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
TPL=$HERE/toolchain
CACHE=${KUBEHA_CACHE:-$HOME/.cache/kubeha}
TBIN=$CACHE/toolchain/bin
PHOME=$CACHE/pulumi-home
WORK=$CACHE/work
STAMPS=$CACHE/stamps
NICE=(nice -n "${KUBEHA_NICE:-10}")
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
export GOFLAGS="${GOFLAGS:-} -mod=mod"

log() { printf '[toolchain] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1fs", b-a}'; }
sha() { sha256sum | cut -c1-16; }

# step NAME KEY FUNC [OUTPUT...]: run FUNC unless the stamp of NAME holds KEY and all OUTPUTs exist.
step() {
  local name=$1 key=$2 fn=$3; shift 3
  local stamp=$STAMPS/$name ok=1 o
  if [[ -f $stamp && "$(cat "$stamp")" == "$key" ]]; then
    for o in "$@"; do [[ -e $o ]] || ok=0; done
    if (( ok )); then log "$name: up to date ($key)"; return 0; fi
  fi
  local t0; t0=$(now)
  log "$name: building ($key)"
  rm -f "$stamp"
  "$fn"
  for o in "$@"; do [[ -e $o ]] || die "$name: expected output $o is missing"; done
  mkdir -p "$STAMPS"; printf '%s' "$key" >"$stamp"
  log "$name: done in $(elapsed "$t0")"
}

# wrapper DIR: a fresh module in $WORK/DIR, printed; go.mod/go.sum are kept between runs so that
# re-resolution is warm.
wrapper() {
  local d=$WORK/$1
  mkdir -p "$d"
  rm -f "$d"/*.go
  if [[ ! -f $d/go.mod ]]; then
    (cd "$d" && go mod init "kubeha.local/toolchain/$1" >/dev/null 2>&1)
  fi
  printf '%s' "$d"
}

# modtime MODULE VERSION: the commit time of a module version as the proxy reports it.
modtime() { (go list -m -f '{{if .Time}}{{.Time.Format "2006-01-02T15:04:05Z"}}{{end}}' "$1@$2"); }

gobuild() { "${NICE[@]}" go build -trimpath "$@"; }

# ================================================================================================
# Pulumi
# ================================================================================================
build_pulumi_cli() {
  local d; d=$(wrapper pulumi-cli)
  (
    cd "$d"
    # go.mod is rewritten from scratch: the CLI's own go.mod replaces sdk/v3 with ../sdk, so
    # `go install pkg@version` is refused; a wrapper requiring both at the same version works.
    cat >go.mod <<EOF
module kubeha.local/toolchain/pulumi-cli

go 1.26

require (
	github.com/pulumi/pulumi/pkg/v3 v$PULUMI_VERSION
	github.com/pulumi/pulumi/sdk/v3 v$PULUMI_VERSION
)

replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e
EOF
    CGO_ENABLED=0 gobuild -tags osusergo,grpcnotrace \
      -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" \
      -o "$TBIN/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
  )
}

# The real language host (module github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3)
# is not served by the module proxy here (403 "not available"); lab/toolchain/pulumi-language-nodejs
# is a small replacement built on sdk/v3 that runs @pulumi/pulumi's own cmd/run like the real one.
build_langhost() {
  local d; d=$(wrapper pulumi-language-nodejs)
  cp "$TPL/pulumi-language-nodejs/main.go" "$d/main.go"
  (
    cd "$d"
    cat >go.mod <<EOF
module kubeha.local/toolchain/pulumi-language-nodejs

go 1.26

require github.com/pulumi/pulumi/sdk/v3 v$PULUMI_VERSION
EOF
    CGO_ENABLED=0 gobuild -tags osusergo,grpcnotrace -ldflags "-s -w -X main.version=$PULUMI_VERSION" \
      -o "$TBIN/pulumi-language-nodejs" .
  )
}

# pulumi-resource-pulumi-nodejs (dynamic providers) ships inside the @pulumi/pulumi npm package.
# The copy here finds @pulumi/pulumi from the program directory (like the original) or, failing
# that, from $KUBEHA_NODE_MODULES or this repo's node_modules.
install_dynamic_provider_script() {
  mkdir -p "$TBIN"
  install -m 0755 "$TPL/pulumi-resource-pulumi-nodejs" "$TBIN/pulumi-resource-pulumi-nodejs"
  local nm=${KUBEHA_NODE_MODULES:-$REPO/node_modules}
  if [[ -f $nm/@pulumi/pulumi/pulumi-resource-pulumi-nodejs ]]; then
    log "dynamic-provider: @pulumi/pulumi $(node_pkg_version "$nm/@pulumi/pulumi") found in $nm"
  else
    log "dynamic-provider: NOTE: $nm/@pulumi/pulumi is not installed yet (npm ci in the repo, or set KUBEHA_NODE_MODULES); the script resolves it at run time"
  fi
}
node_pkg_version() { sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$1/package.json" | head -1; }

# Provider plugins. Their source modules (github.com/pulumi/pulumi-command/provider,
# .../pulumi-tls/provider/v5, .../pulumi-random/provider/v4, and the dependencies
# github.com/pulumi/pulumi-go-provider and github.com/pulumi/terraform-plugin-sdk/v2) are refused by
# the module proxy here (403 "This module version is not available"), so they cannot be built from
# Go modules on this machine. If KUBEHA_PLUGIN_DIR holds prebuilt binaries they are installed.
install_plugins() {
  local name ver bin missing=()
  for name in command tls random; do
    case $name in
      command) ver=$PULUMI_COMMAND_VERSION ;; tls) ver=$PULUMI_TLS_VERSION ;; random) ver=$PULUMI_RANDOM_VERSION ;;
    esac
    bin=
    [[ -n $KUBEHA_PLUGIN_DIR && -x $KUBEHA_PLUGIN_DIR/pulumi-resource-$name ]] && bin=$KUBEHA_PLUGIN_DIR/pulumi-resource-$name
    [[ -z $bin && -x $TBIN/pulumi-resource-$name ]] && bin=$TBIN/pulumi-resource-$name
    if [[ -z $bin ]]; then missing+=("$name@$ver"); continue; fi
    PULUMI_HOME=$PHOME PULUMI_SKIP_UPDATE_CHECK=true "$TBIN/pulumi" plugin install resource "$name" "$ver" --file "$bin" --reinstall
  done
  if ((${#missing[@]})); then
    log "plugins: NOT INSTALLED: ${missing[*]} (source modules not served by the Go proxy here; put prebuilt pulumi-resource-<name> binaries in KUBEHA_PLUGIN_DIR and re-run)"
  fi
}

do_pulumi() {
  mkdir -p "$TBIN" "$PHOME" "$WORK"
  local tplsum; tplsum=$(cat "$TPL/pulumi-language-nodejs/main.go" | sha)
  step pulumi-cli "pulumi v$PULUMI_VERSION tags=osusergo,grpcnotrace" build_pulumi_cli "$TBIN/pulumi"
  step pulumi-language-nodejs "langhost sdk v$PULUMI_VERSION src=$tplsum" build_langhost "$TBIN/pulumi-language-nodejs"
  step pulumi-dynamic-provider "script $(sha <"$TPL/pulumi-resource-pulumi-nodejs")" install_dynamic_provider_script "$TBIN/pulumi-resource-pulumi-nodejs"
  local pkey="command=$PULUMI_COMMAND_VERSION tls=$PULUMI_TLS_VERSION random=$PULUMI_RANDOM_VERSION dir=$KUBEHA_PLUGIN_DIR"
  local plugins_ok=1 n
  for n in command tls random; do ls -d "$PHOME"/plugins/resource-$n-v* >/dev/null 2>&1 || plugins_ok=0; done
  if ((plugins_ok)); then
    step pulumi-plugins "$pkey" install_plugins
  else
    local t0; t0=$(now); install_plugins; log "pulumi-plugins: done in $(elapsed "$t0")"
  fi
  "$TBIN/pulumi" version >/dev/null || die "pulumi does not run"
}

# ================================================================================================
# Cluster binaries (linux/amd64)
# ================================================================================================
ART_ROOT=$CACHE/artifacts
all_versions() {
  printf 'etcd=%s k8s=%s flannel=%s cni=%s flannel-cni=%s@%s containerd=%s runc=%s seccomp=%s' \
    "$ETCD_VERSION" "$K8S_VERSION" "$FLANNEL_VERSION" "$CNI_PLUGINS_VERSION" \
    "$FLANNEL_CNI_MODULE" "$FLANNEL_CNI_VERSION" "$CONTAINERD_VERSION" "$RUNC_VERSION" "$RUNC_SECCOMP"
}
SET=${KUBEHA_ARTIFACT_SET:-k8s-$K8S_VERSION-$(all_versions | sha | cut -c1-8)}
ART=$ART_ROOT/$SET
export GOOS=linux GOARCH=amd64

build_etcd() {
  local d m; d=$(wrapper etcd)
  (
    cd "$d"
    # Each etcd module replaces its siblings with ../dirs; the wrapper requires them all at one version.
    # The etcd server's main package is go.etcd.io/etcd/server/v3 (module root).
    for m in go.etcd.io/etcd/etcdctl/v3 go.etcd.io/etcd/etcdutl/v3 \
             go.etcd.io/etcd/server/v3 go.etcd.io/etcd/api/v3 go.etcd.io/etcd/client/v3 \
             go.etcd.io/etcd/client/pkg/v3 go.etcd.io/etcd/pkg/v3; do
      go mod edit -require="$m@$ETCD_VERSION"
    done
    local ld="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"
    CGO_ENABLED=0 gobuild -ldflags "$ld" -o "$ART/etcd" go.etcd.io/etcd/server/v3
    CGO_ENABLED=0 gobuild -ldflags "$ld" -o "$ART/" go.etcd.io/etcd/etcdctl/v3 go.etcd.io/etcd/etcdutl/v3
  )
}

build_k8s() {
  local d; d=$(wrapper kubernetes)
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local stage=v0.${K8S_VERSION#v1.}
  (
    cd "$d"
    go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
    # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with
    # ./staging/src/...; the wrapper points every one at its published v0.<minor>.<patch>.
    local gomod; gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
    local staging; staging=$(awk '/=> \.\/staging\/src\//{print $1}' "$gomod")
    [[ -n $staging ]] || die "no staging replaces found in $gomod"
    local m; for m in $staging; do go mod edit -replace="$m=$m@$stage"; done
    local date; date=$(modtime k8s.io/kubernetes "$K8S_VERSION")
    local ld="-s -w" p
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
      ld+=" -X $p.gitTreeState=clean -X $p.buildDate=${date:-1970-01-01T00:00:00Z}"
    done
    CGO_ENABLED=0 gobuild -tags selinux,notest,grpcnotrace -ldflags "$ld" -o "$ART/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
      k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl
  )
}

build_flannel() {
  local d; d=$(wrapper flannel)
  (
    cd "$d"
    local m=github.com/flannel-io/flannel
    go mod edit -require="$m@$FLANNEL_VERSION"
    local src; src=$(go mod download -json "$m@$FLANNEL_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
    # flanneld's main.go, less the Tencent Cloud VPC backend: its SDK module
    # (github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc) is not served here.
    grep -v '"github.com/flannel-io/flannel/pkg/backend/tencentvpc"' "$src/main.go" >main.go
    # cgo is needed by the udp backend on amd64 (a C proxy); linked static as upstream's Makefile does.
    CGO_ENABLED=1 gobuild -tags netgo,osusergo \
      -ldflags "-s -w -X $m/pkg/version.Version=$FLANNEL_VERSION -extldflags -static" -o "$ART/flanneld" .
  )
}

build_cni() {
  local d; d=$(wrapper cni-plugins)
  mkdir -p "$ART/cni"
  (
    cd "$d"
    local m=github.com/containernetworking/plugins
    go mod edit -require="$m@$CNI_PLUGINS_VERSION"
    CGO_ENABLED=0 gobuild -ldflags "-s -w -X $m/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" \
      -o "$ART/cni/" $m/plugins/main/bridge $m/plugins/ipam/host-local $m/plugins/main/loopback $m/plugins/meta/portmap
  )
}

build_flannel_cni() {
  local d; d=$(wrapper flannel-cni)
  mkdir -p "$ART/cni"
  (
    cd "$d"
    go mod edit -require="$FLANNEL_CNI_MODULE@$FLANNEL_CNI_VERSION"
    local bv="-X $FLANNEL_CNI_MODULE/pkg/utils/buildversion.BuildVersion=$FLANNEL_CNI_VERSION"
    [[ $FLANNEL_CNI_MODULE == github.com/flannel-io/cni-plugin ]] && bv="-X main.Version=$FLANNEL_CNI_VERSION"
    CGO_ENABLED=0 gobuild -ldflags "-s -w $bv" -o "$ART/cni/flannel" "$FLANNEL_CNI_MODULE/$FLANNEL_CNI_PKG"
  )
}

build_containerd() {
  local d; d=$(wrapper containerd)
  (
    cd "$d"
    local m=github.com/containerd/containerd/v2
    go mod edit -require="$m@$CONTAINERD_VERSION"
    local ld="-s -w -X $m/version.Version=$CONTAINERD_VERSION -X $m/version.Package=github.com/containerd/containerd/v2"
    # static: CGO off (only the btrfs snapshotter needs cgo: left out with no_btrfs), tags as upstream
    CGO_ENABLED=0 gobuild -tags "urfave_cli_no_docs osusergo netgo static_build no_btrfs" -ldflags "$ld" \
      -o "$ART/" $m/cmd/containerd $m/cmd/ctr
    CGO_ENABLED=0 gobuild -tags "urfave_cli_no_docs osusergo netgo static_build no_btrfs no_grpc" -ldflags "$ld" \
      -o "$ART/containerd-shim-runc-v2" $m/cmd/containerd-shim-runc-v2
  )
}

ensure_libseccomp() {
  if pkg-config --exists libseccomp 2>/dev/null && [[ -f /usr/lib/x86_64-linux-gnu/libseccomp.a ]]; then return 0; fi
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "runc: installing libseccomp-dev (Debian) for static seccomp support"
    { apt-get install -y --no-install-recommends libseccomp-dev pkg-config >/dev/null 2>&1 ||
      { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends libseccomp-dev pkg-config >/dev/null 2>&1; }; } || true
  fi
  pkg-config --exists libseccomp 2>/dev/null
}

build_runc() {
  local d; d=$(wrapper runc)
  (
    cd "$d"
    go mod edit -require="github.com/opencontainers/runc@$RUNC_VERSION"
    # runc needs cgo in any case (libcontainer/nsenter is C); linked static-pie like upstream's
    # `make static`. libpathrs (a Rust library, upstream default tag) is left out: runc falls back
    # to its pure-Go pathrs-lite.
    local tags="urfave_cli_no_docs netgo osusergo"
    if [[ $RUNC_SECCOMP == 1 ]]; then
      ensure_libseccomp || die "runc: libseccomp-dev not available; re-run with RUNC_SECCOMP=0 to build without seccomp"
      tags+=" seccomp"
    else
      log "runc: building WITHOUT seccomp support (RUNC_SECCOMP=0)"
    fi
    CGO_ENABLED=1 gobuild -buildmode=pie -tags "$tags" \
      -ldflags "-s -w -linkmode external -extldflags -static-pie" \
      -o "$ART/runc" github.com/opencontainers/runc
  )
}

write_manifest() {
  (
    cd "$ART"
    find . -type f ! -name SHA256SUMS ! -name versions.json ! -name build-info.json ! -path './.stamps/*' ! -path './images/*' -printf '%P\n' | sort |
      xargs sha256sum >SHA256SUMS
  )
  cat >"$ART/versions.json" <<EOF
{
  "etcd": "$ETCD_VERSION",
  "etcdctl": "$ETCD_VERSION",
  "etcdutl": "$ETCD_VERSION",
  "kube-apiserver": "$K8S_VERSION",
  "kube-controller-manager": "$K8S_VERSION",
  "kube-scheduler": "$K8S_VERSION",
  "kubelet": "$K8S_VERSION",
  "kube-proxy": "$K8S_VERSION",
  "kubectl": "$K8S_VERSION",
  "flanneld": "$FLANNEL_VERSION",
  "cni/flannel": "$FLANNEL_CNI_VERSION",
  "cni/bridge": "$CNI_PLUGINS_VERSION",
  "cni/host-local": "$CNI_PLUGINS_VERSION",
  "cni/loopback": "$CNI_PLUGINS_VERSION",
  "cni/portmap": "$CNI_PLUGINS_VERSION",
  "containerd": "$CONTAINERD_VERSION",
  "containerd-shim-runc-v2": "$CONTAINERD_VERSION",
  "ctr": "$CONTAINERD_VERSION",
  "runc": "$RUNC_VERSION"
}
EOF
  cat >"$ART/build-info.json" <<EOF
{
  "go": "$(go env GOVERSION)",
  "goos_goarch": "linux/amd64",
  "cni/flannel.module": "$FLANNEL_CNI_MODULE/$FLANNEL_CNI_PKG@$FLANNEL_CNI_VERSION",
  "flanneld.note": "built without the tencentvpc backend (its SDK module is not served here)",
  "runc.seccomp": $([[ $RUNC_SECCOMP == 1 ]] && echo true || echo false),
  "static": "all CGO_ENABLED=0 except flanneld (cgo, -extldflags -static) and runc (cgo, static-pie)"
}
EOF
}

do_cluster() {
  mkdir -p "$ART" "$WORK"
  local S=$STAMPS
  STAMPS=$ART/.stamps
  step etcd "etcd $ETCD_VERSION server/v3" build_etcd "$ART/etcd" "$ART/etcdctl" "$ART/etcdutl"
  step kubernetes "k8s $K8S_VERSION tags=selinux,notest,grpcnotrace" build_k8s \
    "$ART/kube-apiserver" "$ART/kube-controller-manager" "$ART/kube-scheduler" "$ART/kubelet" "$ART/kube-proxy" "$ART/kubectl"
  step flannel "flannel $FLANNEL_VERSION -tencentvpc cgo-static" build_flannel "$ART/flanneld"
  step flannel-cni "$FLANNEL_CNI_MODULE@$FLANNEL_CNI_VERSION/$FLANNEL_CNI_PKG" build_flannel_cni "$ART/cni/flannel"
  step cni-plugins "cni $CNI_PLUGINS_VERSION" build_cni "$ART/cni/bridge" "$ART/cni/host-local" "$ART/cni/loopback" "$ART/cni/portmap"
  step containerd "containerd $CONTAINERD_VERSION" build_containerd "$ART/containerd" "$ART/ctr" "$ART/containerd-shim-runc-v2"
  step runc "runc $RUNC_VERSION seccomp=$RUNC_SECCOMP static-pie" build_runc "$ART/runc"
  STAMPS=$S
  write_manifest
  ln -sfn "$SET" "$ART_ROOT/current"
  log "cluster: artifacts in $ART (current -> $SET)"
}

# ================================================================================================
# Container images (linux/amd64): $ART/images/<name>.tar, for `ctr -n k8s.io images import`.
# Built from source here: they stand in for the registry images the lab cannot pull.
# ================================================================================================
IMG=$ART/images
LIBEXEC=$CACHE/toolchain/libexec

# lab/toolchain/ociarchive: writes a one-binary image as an OCI layout tar (+ docker manifest.json)
# tagged with the full reference (go-containerregistry builds the image, the tar is written by hand).
build_ociarchive() {
  mkdir -p "$LIBEXEC"
  # go.sum is committed: -mod=readonly, nothing is written into the repo.
  (cd "$TPL/ociarchive" && CGO_ENABLED=0 GOFLAGS=-mod=readonly gobuild -ldflags "-s -w" -o "$LIBEXEC/ociarchive" .)
}

# img_pack NAME REF BIN CREATED [ociarchive flags...]: $IMG/NAME.tar; logs time (since IMG_T0) and size.
img_pack() {
  local name=$1 ref=$2 bin=$3 created=$4; shift 4
  mkdir -p "$IMG"
  "${NICE[@]}" "$LIBEXEC/ociarchive" -ref "$ref" -bin "$bin" -created "$created" -out "$IMG/$name.tar" "$@" >/dev/null
  log "image $name: $ref -> $IMG/$name.tar ($(du -h --apparent-size "$IMG/$name.tar" | cut -f1), binary $(du -h --apparent-size "$bin" | cut -f1)) in $(elapsed "$IMG_T0")"
}

# served MODULE VERSION (in a module dir): fails naming the versions the module proxy does serve.
served() {
  go list -m "$1@$2" >/dev/null 2>&1 && return 0
  die "$1@$2 is not served by the Go module proxy here; it serves: $(go list -m -versions "$1" 2>/dev/null | cut -d' ' -f2- | tr ' ' '\n' | tail -8 | tr '\n' ' ')(set the version variable; the image tag follows it)"
}
# modhash MODULE VERSION: the commit a module version was made from, when the proxy tells it.
modhash() { go mod download -json "$1@$2" 2>/dev/null | sed -n 's/.*"Hash": "\([0-9a-f]*\)".*/\1/p' | head -1; }

PAUSE_BUILD="gcc -static -Os -s"
build_img_pause() {
  IMG_T0=$(now)
  local d=$WORK/images/pause ver=${PAUSE_IMAGE##*:}
  mkdir -p "$d"
  # Our own pause (lab/toolchain/pause/pause.c), static; runs as 65535 like the upstream image.
  "${NICE[@]}" $PAUSE_BUILD -Wall -Wextra -DPAUSE_VERSION="\"$ver\"" -o "$d/pause" "$TPL/pause/pause.c"
  local created; created=$(git -C "$REPO" log -1 --format=%cI -- lab/toolchain/pause/pause.c 2>/dev/null || true)
  img_pack pause "$PAUSE_IMAGE" "$d/pause" "$(date -u -d "${created:-@0}" +%Y-%m-%dT%H:%M:%SZ)" \
    -user 65535:65535 -entrypoint /pause \
    -label "org.opencontainers.image.source=kubeha lab/toolchain/pause/pause.c" \
    -label "org.opencontainers.image.version=$ver" \
    -label "org.opencontainers.image.description=kubeha lab build, not the official image"
}

build_img_coredns() {
  IMG_T0=$(now)
  local m=github.com/coredns/coredns d; d=$(wrapper coredns)
  (
    cd "$d"
    served "$m" "$COREDNS_VERSION"
    go mod edit -require="$m@$COREDNS_VERSION"
    local commit; commit=$(modhash "$m" "$COREDNS_VERSION")
    # as upstream's Makefile: CGO off, -s -w, coremain.GitCommit (the version is a constant in coremain)
    CGO_ENABLED=0 gobuild -ldflags "-s -w -X $m/coremain.GitCommit=${commit:-$COREDNS_VERSION}" -o "$d/coredns" "$m"
    # Upstream's image runs as nonroot (65532) and binds :53 through `setcap cap_net_bind_service=+ep`
    # on /coredns: the archive carries the same file capability (security.capability xattr).
    img_pack coredns "$COREDNS_IMAGE" "$d/coredns" "$(modtime "$m" "$COREDNS_VERSION")" \
      -user 65532:65532 -entrypoint /coredns -cap net_bind_service \
      -label "org.opencontainers.image.source=$m@$COREDNS_VERSION" \
      -label "org.opencontainers.image.revision=$commit" \
      -label "org.opencontainers.image.version=$COREDNS_VERSION" \
      -label "org.opencontainers.image.description=kubeha lab build from source, not the official image"
  )
}

build_img_metrics_server() {
  IMG_T0=$(now)
  local m=sigs.k8s.io/metrics-server d; d=$(wrapper metrics-server)
  (
    cd "$d"
    served "$m" "$METRICS_SERVER_VERSION"
    go mod edit -require="$m@$METRICS_SERVER_VERSION"
    local date commit; date=$(modtime "$m" "$METRICS_SERVER_VERSION"); commit=$(modhash "$m" "$METRICS_SERVER_VERSION")
    # as upstream's Makefile: CGO off, client-go's version variables
    local p=k8s.io/client-go/pkg/version
    local ld="-s -w -X $p.gitVersion=$METRICS_SERVER_VERSION -X $p.buildDate=${date:=1970-01-01T00:00:00Z}"
    [[ -n $commit ]] && ld+=" -X $p.gitCommit=$commit"
    CGO_ENABLED=0 gobuild -ldflags "$ld" -o "$d/metrics-server" "$m/cmd/metrics-server"
    img_pack metrics-server "$METRICS_SERVER_IMAGE" "$d/metrics-server" "$date" \
      -user 65534:65534 -entrypoint /metrics-server \
      -label "org.opencontainers.image.source=$m@$METRICS_SERVER_VERSION" \
      -label "org.opencontainers.image.version=$METRICS_SERVER_VERSION" \
      -label "org.opencontainers.image.description=kubeha lab build from source, not the official image"
  )
}

write_images_manifest() {
  (cd "$IMG" && sha256sum pause.tar coredns.tar metrics-server.tar >SHA256SUMS)
  cat >"$IMG/images.json" <<EOF
{
  "pause.tar": { "ref": "$PAUSE_IMAGE", "source": "lab/toolchain/pause/pause.c ($PAUSE_BUILD)" },
  "coredns.tar": { "ref": "$COREDNS_IMAGE", "source": "github.com/coredns/coredns@$COREDNS_VERSION" },
  "metrics-server.tar": { "ref": "$METRICS_SERVER_IMAGE", "source": "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION" }
}
EOF
}

do_images() {
  mkdir -p "$IMG" "$WORK"
  local tool; tool=$(cat "$TPL/ociarchive/main.go" "$TPL/ociarchive/go.mod" "$TPL/ociarchive/go.sum" | sha)
  step ociarchive "ociarchive src=$tool" build_ociarchive "$LIBEXEC/ociarchive"
  local S=$STAMPS
  STAMPS=$ART/.stamps
  step image-pause "$PAUSE_IMAGE $PAUSE_BUILD src=$(sha <"$TPL/pause/pause.c") tool=$tool" build_img_pause "$IMG/pause.tar"
  step image-coredns "$COREDNS_IMAGE coredns@$COREDNS_VERSION cap=net_bind_service tool=$tool" build_img_coredns "$IMG/coredns.tar"
  step image-metrics-server "$METRICS_SERVER_IMAGE metrics-server@$METRICS_SERVER_VERSION tool=$tool" \
    build_img_metrics_server "$IMG/metrics-server.tar"
  STAMPS=$S
  write_images_manifest
  log "images: in $IMG; on a node: ctr -n k8s.io images import <file>"
}

do_env() {
  cat <<EOF
export PATH="$TBIN:\$PATH"
export PULUMI_HOME="$PHOME"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK=true
EOF
}

do_status() {
  echo "cache: $CACHE"
  ls -l "$TBIN" 2>/dev/null || true
  [[ -x $TBIN/pulumi ]] && PULUMI_HOME=$PHOME "$TBIN/pulumi" plugin ls 2>/dev/null || true
  [[ -e $ART_ROOT/current ]] && { echo "artifacts: $(readlink "$ART_ROOT/current")"; cat "$ART_ROOT/current/versions.json"; }
  [[ -f $ART_ROOT/current/images/images.json ]] && { echo "images: $ART_ROOT/current/images"; cat "$ART_ROOT/current/images/images.json"; }
  du -sh "$CACHE" 2>/dev/null || true
}

main() {
  local cmd=${1:-}
  case $cmd in
    pulumi) T0=$(now); do_pulumi; log "pulumi: total $(elapsed "$T0")" ;;
    cluster) T0=$(now); do_cluster; log "cluster: total $(elapsed "$T0")" ;;
    images) T0=$(now); do_images; log "images: total $(elapsed "$T0")" ;;
    all) T0=$(now); do_pulumi; do_cluster; do_images; log "all: total $(elapsed "$T0")" ;;
    env) do_env ;;
    status) do_status ;;
    *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}
main "$@"
