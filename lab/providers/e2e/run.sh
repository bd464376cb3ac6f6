#!/usr/bin/env bash
# End-to-end check of the lab stand-in plugins with the real Pulumi CLI and the npm SDKs:
# starts an sshd on 127.0.0.1 (free high port, temporary host and client keys), then in a
# TypeScript project (index.ts here) with a file:// backend runs
#   1. pulumi up --yes                      (CA + locally signed cert + random values + Command + CopyToRemote)
#   2. pulumi up --yes --expect-no-changes
#   3. pulumi refresh --yes --expect-no-changes
#   4. trigger changed        -> preview says replace for the command; up runs create, then the old delete
#   5. update text changed    -> preview says update; up runs `update`, no create/delete
#   6. copied file changed    -> preview says update for CopyToRemote; the file is copied again
#   7. a certificate due for early renewal -> replaced on every up
#   8. pulumi destroy --yes   -> runs `delete`
# and checks the results (files on the "remote", openssl chain verification, secrets kept out of
# state and logs). Needs: lab/toolchain.sh pulumi, lab/providers/build.sh, openssh-server, openssl,
# Node >= 22 (~/.local/node24/bin is put first on PATH when present).
# KUBEHA_E2E_KEEP=1 keeps the temporary directory.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$(cd "$HERE/../.." && pwd)
CACHE=${KUBEHA_CACHE:-$HOME/.cache/kubeha}
eval "$(bash "$LAB/toolchain.sh" env)"
NODE24=${KUBEHA_NODE24_BIN:-$HOME/.local/node24/bin}
[[ -x $NODE24/node ]] && export PATH="$NODE24:$PATH"
SSHD=${SSHD:-/usr/sbin/sshd}
PROJ=$CACHE/providers/e2e-project # node_modules are kept between runs
TMP=$(mktemp -d /tmp/kubeha-providers-e2e.XXXXXX)
SSHD_PID=
FAILED=0
declare -a TIMES=()

log() { printf '[e2e] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; FAILED=$((FAILED + 1)); }
ok() { log "ok: $*"; }
cleanup() {
  if [[ -n $SSHD_PID ]]; then kill "$SSHD_PID" 2>/dev/null || true; wait "$SSHD_PID" 2>/dev/null || true; fi
  if [[ -n ${KUBEHA_E2E_KEEP:-} ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

for tool in pulumi node npm openssl ssh-keygen "$SSHD"; do
  command -v "$tool" >/dev/null || { log "missing $tool"; exit 1; }
done
for p in tls:5.6.1 random:4.21.2 command:1.2.1; do
  [[ -x $PULUMI_HOME/plugins/resource-${p%%:*}-v${p##*:}/pulumi-resource-${p%%:*} ]] ||
    { log "plugin ${p/:/ } not installed: run lab/providers/build.sh"; exit 1; }
done

# timed NAME CMD...: runs CMD with its output in $TMP/NAME.log, records the wall time.
timed() {
  local name=$1 t0 rc=0; shift
  t0=$(date +%s.%N)
  "$@" >"$TMP/$name.log" 2>&1 || rc=$?
  TIMES+=("$(awk -v a="$t0" -v b="$(date +%s.%N)" -v n="$name" -v r="$rc" 'BEGIN{printf "%-10s %6.1fs  exit %d", n, b-a, r}')")
  if ((rc != 0)); then log "$name failed (exit $rc); last lines:"; tail -n 30 "$TMP/$name.log" >&2; fi
  return $rc
}

# ---- the installed plugins answer GetPluginInfo/GetSchema with a schema the CLI can bind ----------
for p in tls:5.6.1 random:4.21.2 command:1.2.1; do
  bin=$PULUMI_HOME/plugins/resource-${p%%:*}-v${p##*:}/pulumi-resource-${p%%:*}
  if (cd "$(dirname "$bin")" && pulumi package get-schema "./$(basename "$bin")" 2>&1) |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);process.exit(j.name+"@"+j.version===process.argv[1]?0:1)})' "${p/:/@}"; then
    ok "schema of ${p/:/ } binds"
  else fail "schema of ${p/:/ }"; fi
done

# ---- project ------------------------------------------------------------------------------------
mkdir -p "$PROJ"
cp "$HERE/Pulumi.yaml" "$HERE/package.json" "$HERE/tsconfig.json" "$HERE/index.ts" "$PROJ/"
rm -f "$PROJ"/Pulumi.*.yaml.bak "$PROJ/Pulumi.e2e.yaml"
cd "$PROJ"
if ! cmp -s package.json .installed-package.json || [[ ! -d node_modules/@pulumi/command ]]; then
  log "npm install in $PROJ"
  timed npm-install npm install --no-audit --no-fund --loglevel=error
  cp package.json .installed-package.json
fi
echo "payload v1" >payload.txt

# ---- sshd ---------------------------------------------------------------------------------------
S=$TMP/sshd R=$TMP/remote
mkdir -p "$S" "$R" "$TMP/state"
ssh-keygen -q -t ed25519 -N '' -C e2e-host -f "$S/host_ed25519"
ssh-keygen -q -t ecdsa -N '' -C e2e-host -f "$S/host_ecdsa"
ssh-keygen -q -t ed25519 -N '' -C e2e-client -f "$S/client"
cp "$S/client.pub" "$S/authorized_keys"
PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
[[ $(id -u) == 0 ]] && mkdir -p /run/sshd
cat >"$S/sshd_config" <<EOF
Port $PORT
ListenAddress 127.0.0.1
HostKey $S/host_ecdsa
HostKey $S/host_ed25519
AuthorizedKeysFile $S/authorized_keys
PidFile $S/sshd.pid
StrictModes no
UsePAM no
PermitRootLogin yes
PasswordAuthentication no
KbdInteractiveAuthentication no
Subsystem sftp internal-sftp
LogLevel ERROR
EOF
"$SSHD" -D -e -f "$S/sshd_config" 2>"$S/sshd.log" &
SSHD_PID=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
log "sshd pid $SSHD_PID on 127.0.0.1:$PORT; remote dir $R"

# ---- stack --------------------------------------------------------------------------------------
export PULUMI_BACKEND_URL="file://$TMP/state" PULUMI_CONFIG_PASSPHRASE=test
pulumi stack init e2e --non-interactive >/dev/null
pulumi config set sshPort "$PORT"
pulumi config set sshUser "$(id -un)"
pulumi config set hostKey "$(cut -d' ' -f1,2 "$S/host_ed25519.pub")"
pulumi config set remoteDir "$R"
pulumi config set --secret sshKey -- "$(cat "$S/client")"

outputs() { pulumi stack output --json --show-secrets; }
# ops RESOURCE: the operations `pulumi preview --json` plans for a resource name.
ops() {
  pulumi preview --json 2>/dev/null | node -e '
    let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);
    const o=(j.steps||[]).filter(x=>x.urn.endsWith("::"+process.argv[1])).map(x=>x.op);console.log(o.join(",")||"none")})' "$1"
}

# 1. first deployment
if timed up1 pulumi up --yes; then ok "pulumi up created everything"; else fail "pulumi up"; fi
outputs >"$TMP/outputs.json"
node -e 'const o=require(process.argv[1]);const fs=require("fs");
  fs.writeFileSync(process.argv[2]+"/ca.pem",o.caCert);fs.writeFileSync(process.argv[2]+"/leaf.pem",o.leafCert);
  fs.writeFileSync(process.argv[2]+"/expected-bundle",o.leafCert+o.caCert+o.passwordResult+"\n");
  fs.writeFileSync(process.argv[2]+"/password",o.passwordResult);' "$TMP/outputs.json" "$TMP"
if cmp -s "$TMP/expected-bundle" "$R/bundle.pem"; then ok "stdin reached the host (bundle.pem = leaf + CA + password)"; else fail "bundle.pem differs from the expected stdin"; fi
if openssl verify -CAfile "$TMP/ca.pem" -purpose sslserver "$TMP/leaf.pem" >/dev/null 2>&1 &&
  openssl x509 -in "$TMP/leaf.pem" -noout -ext subjectAltName 2>/dev/null | grep -q "IP Address:10.96.0.1"; then
  ok "openssl verifies the leaf against the CA (sslserver purpose, SANs present)"
else fail "openssl verification of the chain"; fi
[[ "$(cat "$R/uploads/x/payload.txt" 2>/dev/null)" == "payload v1" ]] && ok "CopyToRemote copied payload.txt (parents created)" || fail "CopyToRemote"
[[ "$(pulumi stack output passwordResult)" == "[secret]" && "$(pulumi stack output leafKeyPem)" == "[secret]" && "$(pulumi stack output encKeyBase64)" == "[secret]" ]] &&
  ok "password, private key and random bytes are secrets" || fail "secret outputs"
pulumi stack export >"$TMP/state.json"
PW=$(cat "$TMP/password")
if [[ ${#PW} == 16 ]] && ! grep -qF "$PW" "$TMP/state.json" "$TMP/up1.log"; then ok "the password is in neither the state nor the up output"; else fail "password leaked into state or logs"; fi
grep -q "ciphertext" "$TMP/state.json" && ok "state holds ciphertext for secrets" || fail "no ciphertext in state"
[[ "$(node -e 'console.log(require(process.argv[1]).putStdout)' "$TMP/outputs.json")" == "created" ]] && ok "command stdout captured" || fail "command stdout"

# 2. nothing changed
if timed up2 pulumi up --yes --expect-no-changes; then ok "second pulumi up: no changes"; else fail "second up reported changes"; fi
# 3. refresh (provider Read) changes nothing either
if timed refresh pulumi refresh --yes --expect-no-changes; then ok "pulumi refresh: no changes"; else fail "refresh reported changes"; fi

# 4. a new trigger replaces the command: the new one's create runs, then the old one's delete
pulumi config set trigger t2
plan=$(ops put)
[[ $plan == *replace* ]] && ok "preview after trigger change: put -> $plan" || fail "preview after trigger change: put -> $plan"
before=$(wc -l <"$R/log")
if timed trigger pulumi up --yes; then :; else fail "up after trigger change"; fi
new=$(tail -n +$((before + 1)) "$R/log" | paste -sd' ')
[[ $new == "create delete" ]] && ok "trigger change replaced the command (log: $new)" || fail "trigger change: log after up: '$new'"

# 5. a new update text updates in place: `update` runs, nothing is created or deleted
pulumi config set updateTag update2
plan=$(ops put)
[[ $plan == update ]] && ok "preview after update-text change: put -> $plan" || fail "preview after update-text change: put -> $plan"
before=$(wc -l <"$R/log")
if timed update pulumi up --yes; then :; else fail "up after update change"; fi
new=$(tail -n +$((before + 1)) "$R/log" | paste -sd' ')
[[ $new == "update2" ]] && ok "update-text change ran update in place (log: $new)" || fail "update change: log after up: '$new'"
cmp -s "$TMP/expected-bundle" "$R/bundle.pem" && ok "update re-sent stdin" || fail "bundle.pem after update"

# 6. a changed source file is copied again (CopyToRemote update, not replace)
echo "payload v2" >payload.txt
plan=$(ops copy)
[[ $plan == update ]] && ok "preview after payload change: copy -> $plan" || fail "preview after payload change: copy -> $plan"
if timed copy pulumi up --yes; then :; else fail "up after payload change"; fi
[[ "$(cat "$R/uploads/x/payload.txt")" == "payload v2" ]] && ok "payload copied again" || fail "payload not updated"
if timed up3 pulumi up --yes --expect-no-changes; then ok "no changes after that"; else fail "changes remained"; fi

# 7. a certificate within earlyRenewalHours of its end is replaced on every up
pulumi config set renewTest true
if timed renew1 pulumi up --yes; then :; else fail "up with the renewal certificate"; fi
plan=$(ops due)
[[ $plan == *replace* ]] && ok "certificate due for renewal: preview says due -> $plan" || fail "renewal: preview says due -> $plan"
if timed renew2 pulumi up --yes && grep -q "replaced" "$TMP/renew2.log"; then ok "up replaced the due certificate"; else fail "renewal replacement"; fi
pulumi config rm renewTest
if timed renew3 pulumi up --yes; then :; else fail "up removing the renewal certificate"; fi

# 8. destroy runs `delete`
before=$(wc -l <"$R/log")
if timed destroy pulumi destroy --yes; then :; else fail "pulumi destroy"; fi
new=$(tail -n +$((before + 1)) "$R/log" | paste -sd' ')
[[ $new == "delete" && ! -e $R/bundle.pem ]] && ok "destroy ran delete (log: $new)" || fail "destroy: log '$new', bundle.pem $([[ -e $R/bundle.pem ]] && echo present || echo gone)"
pulumi stack rm --yes e2e >/dev/null 2>&1 || true

log "timings:"
for t in "${TIMES[@]}"; do log "  $t"; done
if ((FAILED)); then log "$FAILED check(s) FAILED"; exit 1; fi
log "all checks passed"
