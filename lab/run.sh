#!/usr/bin/env bash
# lab/run.sh up|down|pulumi <args…> — the whole lab on this machine:
#   up:    toolchain (cached) -> lab hosts -> `pulumi up` of the lab stack -> admin kubeconfig
#   down:  `pulumi destroy` (when there is a stack) -> lab hosts down
#   pulumi <args>: run the Pulumi CLI on the lab stack (e.g. `lab/run.sh pulumi preview`)
# The Pulumi project runs from a copy of the tracked files under $KUBEHA_CACHE/lab/project, so
# the stack's own files (encryption salt) never dirty the checkout; state is a file backend.
# Per-phase wall times are printed and written to $KUBEHA_CACHE/lab/timings.json.
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
CACHE=${KUBEHA_CACHE:-$HOME/.cache/kubeha}
LABDIR=$CACHE/lab
PROJECT=$LABDIR/project
STACK=${KUBEHA_STACK:-lab}
TIMINGS=$LABDIR/timings.json

log() { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
now() { date +%s.%N; }
declare -A took=()
timed() { # timed NAME cmd…: run, record wall seconds
	local name=$1 t0 rc=0
	shift
	t0=$(now)
	"$@" || rc=$?
	took[$name]=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
	log "phase $name: ${took[$name]}s (exit $rc)"
	return $rc
}
write_timings() {
	mkdir -p "$LABDIR"
	{
		printf '{'
		local first=1 k
		for k in "${!took[@]}"; do
			[[ $first == 1 ]] || printf ','
			first=0
			printf '"%s":%s' "$k" "${took[$k]}"
		done
		printf '}\n'
	} >"$TIMINGS.new"
	# Merge with earlier phases of this lab (up, then later destroy).
	node -e 'const fs=require("fs");const [a,b]=process.argv.slice(1);let o={};try{o=JSON.parse(fs.readFileSync(a))}catch{};Object.assign(o,JSON.parse(fs.readFileSync(b)));fs.writeFileSync(a,JSON.stringify(o,null,1)+"\n");console.log(JSON.stringify(o))' "$TIMINGS" "$TIMINGS.new"
	rm -f "$TIMINGS.new"
}

node_ok() { [[ $(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0) -ge 22 ]]; }
ensure_node() {
	node_ok && return
	local prefix=$CACHE/node24
	[[ -x $prefix/bin/node ]] || npm install -g --prefix "$prefix" node@24 --no-fund --no-audit >/dev/null
	export PATH="$prefix/bin:$PATH"
}

pulumi_env() {
	eval "$(bash "$ROOT/lab/toolchain.sh" env)"
	export PULUMI_BACKEND_URL="file://$LABDIR/state"
	# The lab's secrets provider passphrase: lab-only, the state never leaves this machine.
	export PULUMI_CONFIG_PASSPHRASE=${PULUMI_CONFIG_PASSPHRASE:-kubeha-lab}
	mkdir -p "$LABDIR/state"
}

sync_project() {
	mkdir -p "$PROJECT"
	(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | grep -zv '^lab/' | tar --null -T - -cf - | tar -C "$PROJECT" -xf -)
	ln -sfn "$ROOT/node_modules" "$PROJECT/node_modules"
	# Keep the stack's encryption salt (written by `stack init`) across syncs.
	if [[ -f $LABDIR/salt ]]; then printf '%s\n' "$(cat "$LABDIR/salt")" >>"$PROJECT/Pulumi.$STACK.yaml"; fi
}

select_stack() {
	(cd "$PROJECT" && pulumi stack select "$STACK" 2>/dev/null) || {
		(cd "$PROJECT" && pulumi stack init "$STACK" --secrets-provider passphrase >/dev/null)
		grep '^encryptionsalt:' "$PROJECT/Pulumi.$STACK.yaml" >"$LABDIR/salt"
	}
}

cmd_up() {
	ensure_node
	[[ -d $ROOT/node_modules ]] || (cd "$ROOT" && npm ci --no-fund --no-audit)
	timed toolchain bash "$ROOT/lab/toolchain.sh" all
	if [[ -x $ROOT/lab/providers/build.sh ]]; then timed providers bash "$ROOT/lab/providers/build.sh"; fi
	timed lab_up bash "$ROOT/lab/hosts.sh" up
	pulumi_env
	sync_project
	# `hosts.sh up` boots fresh hosts: state of an earlier lab describes hosts that are gone.
	if (cd "$PROJECT" && pulumi stack select "$STACK" 2>/dev/null); then
		log "fresh hosts: forgetting the previous lab stack's state"
		(cd "$PROJECT" && pulumi stack rm --yes --force "$STACK" >/dev/null)
		rm -f "$LABDIR/salt"
		sync_project
	fi
	select_stack
	timed first_up bash -c "cd '$PROJECT' && pulumi up --yes --stack '$STACK' --skip-preview --suppress-progress"
	(cd "$PROJECT" && pulumi stack output kubeconfig --show-secrets --stack "$STACK") >"$LABDIR/admin.conf"
	chmod 600 "$LABDIR/admin.conf"
	write_timings
	cat <<MSG

The cluster's API: $(cd "$PROJECT" && pulumi stack output apiEndpoint --stack "$STACK")
  export KUBECONFIG=$LABDIR/admin.conf
  $CACHE/artifacts/current/kubectl get --raw /readyz; $CACHE/artifacts/current/kubectl get all -A
Hosts: bash lab/hosts.sh status | ssh <host>;  Pulumi: bash lab/run.sh pulumi <preview|up|stack …>
Tear down: npm run lab:down
MSG
}

cmd_down() {
	ensure_node
	if [[ -d $LABDIR/state/.pulumi ]] && [[ -d $PROJECT ]]; then
		pulumi_env
		sync_project
		if (cd "$PROJECT" && pulumi stack select "$STACK" 2>/dev/null); then
			timed destroy bash -c "cd '$PROJECT' && pulumi destroy --yes --stack '$STACK' --skip-preview --suppress-progress" || log "destroy failed; removing the hosts anyway"
			(cd "$PROJECT" && pulumi stack rm --yes --force "$STACK" >/dev/null 2>&1) || true
			rm -f "$LABDIR/salt"
		fi
	fi
	timed lab_down bash "$ROOT/lab/hosts.sh" down
	write_timings
}

cmd_pulumi() {
	ensure_node
	pulumi_env
	sync_project
	select_stack
	cd "$PROJECT" && pulumi "$@" --stack "$STACK"
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
pulumi) shift; cmd_pulumi "$@" ;;
*) echo "usage: lab/run.sh up|down|pulumi <args…>" >&2; exit 2 ;;
esac
