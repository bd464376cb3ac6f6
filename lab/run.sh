#!/usr/bin/env bash
# lab/run.sh up|down|pulumi <args…> — the whole lab on this machine:
#   up:    toolchain (cached) -> lab hosts -> `pulumi up` of the lab stack -> admin kubeconfig
#   down:  `pulumi destroy` (when there is a stack) -> lab hosts down
#   pulumi <args>: run the Pulumi CLI on the lab stack (e.g. `lab/run.sh pulumi preview`)
# The Pulumi project runs from a copy of the tracked files under $KUBEHA_CACHE/lab/project, so
# the stack's own files (encryption salt) never dirty the checkout; state is a file backend.
# The copy's Pulumi.lab.yaml gets this run's $KUBEHA_CACHE in place of ~/.cache/kubeha.
# A stack lock left by a killed pulumi (dead pid on this machine) is removed, and said so; a
# lock held by a running pulumi stops the command.
# Per-phase wall times are printed and written to $KUBEHA_CACHE/lab/timings.json.
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
CACHE=${KUBEHA_CACHE:-$HOME/.cache/kubeha}
LABDIR=$CACHE/lab
PROJECT=$LABDIR/project
STACK=${KUBEHA_STACK:-lab}
TIMINGS=$LABDIR/timings.json

log() { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
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

# Pulumi.lab.yaml describes the main lab (lab/hosts.sh defaults: lab kubeha, 198.18.0.0/24);
# the file backend under $LABDIR is that lab's too. Other labs are lab/hosts.sh only.
main_lab_only() {
	if [[ ${KUBEHA_LAB:-kubeha} != kubeha || ${KUBEHA_LAB_NET:-198.18.0} != 198.18.0 ]]; then
		die "lab/run.sh drives the main lab only (Pulumi.lab.yaml: lab kubeha, 198.18.0.0/24); unset KUBEHA_LAB/KUBEHA_LAB_NET (got '${KUBEHA_LAB:-}' '${KUBEHA_LAB_NET:-}'), or use lab/hosts.sh for other labs"
	fi
}

# The file backend's stack lock: .pulumi/locks/<org>/<project>/<stack>/<uuid>.json (older
# layout: .pulumi/locks/<stack>/), {"pid","username","hostname","timestamp"} of the pulumi
# process that holds it; pulumi deletes it when the operation ends. A pulumi killed with
# SIGKILL leaves it behind and every later operation fails with "the stack is currently
# locked". `pulumi cancel` would not help: on a file backend it deletes every lock of the
# stack without looking (pkg/backend/diy CancelCurrentUpdate), a live one included. So: a lock
# written on this machine whose pid is gone, is not a pulumi, or is a pulumi started after the
# lock was written is stale and removed; any other lock stops us.
LOCK_SLACK=2 # seconds: process start times are read with 1 s resolution (btime)
clear_stale_locks() {
	local dir=$LABDIR/state/.pulumi/locks f pid user host ts epoch when comm start reason me live=0 removed=0
	[[ -d $dir ]] || return 0
	me=$(uname -n) # what Go's os.Hostname gives
	while IFS= read -r -d '' f; do
		[[ $(basename "$(dirname "$f")") == "$STACK" ]] || continue
		# pid, username, hostname, timestamp and the timestamp in epoch seconds, tab-separated.
		IFS=$'\t' read -r pid user host ts epoch < <(node -e '
			const l = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
			const t = Math.floor(Date.parse(l.timestamp) / 1000);
			console.log([l.pid, l.username, l.hostname, l.timestamp, Number.isFinite(t) ? t : 0].join("\t"));
		' "$f" 2>/dev/null) || { log "WARN: cannot read the stack lock $f; leaving it"; live=1; continue; }
		when=$ts
		((epoch > 0)) && when=$(date -d "@$epoch" '+%F %T %Z')
		if [[ $host != "$me" ]]; then
			log "stack $STACK is locked by $user@$host (pid $pid) since $when: another machine, cannot tell whether it still runs ($f; remove it once you know it does not)"
			live=1
			continue
		fi
		reason=""
		if [[ ! $pid =~ ^[0-9]+$ ]] || ! comm=$(cat "/proc/$pid/comm" 2>/dev/null) ||
			[[ $(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) == [ZX] ]]; then
			reason="not running"
		elif [[ $comm != pulumi ]]; then
			reason="not running; pid $pid is now '$comm'"
		else
			start=$(awk -v tck="$(getconf CLK_TCK)" -v bt="$(awk '$1 == "btime" { print $2 }' /proc/stat)" \
				'{ sub(/^.*\) /, ""); printf "%d", bt + $20 / tck }' "/proc/$pid/stat")
			if ((epoch > 0 && start > epoch + LOCK_SLACK)); then
				reason="not running; pid $pid is a pulumi started after the lock, at $(date -d "@$start" '+%F %T %Z')"
			fi
		fi
		if [[ -z $reason ]]; then
			log "stack $STACK is locked by a running pulumi: pid $pid ($user@$host, since $when): $(tr '\0' ' ' <"/proc/$pid/cmdline")"
			live=1
			continue
		fi
		rm -f "$f" "$f.attrs" # .attrs: the blob library's metadata next to it
		log "removed a stale lock left by pulumi pid $pid ($reason) from $when: $f"
		removed=1
	done < <(find "$dir" -type f -name '*.json' -print0)
	((live == 0)) || die "the lab stack is locked (see above): wait for that pulumi to finish, or stop it, then run this again"
	if ((removed)); then
		log "the interrupted operation may have left pending operations in the state (pulumi warns about them);" \
			"lab/run.sh pulumi refresh --clear-pending-creates --yes drops them (up starts a fresh stack anyway)"
	fi
}

sync_project() {
	local f yaml
	mkdir -p "$PROJECT"
	(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | grep -zv '^lab/' | tar --null -T - -cf - | tar -C "$PROJECT" -xf -)
	# The checked-in stack config names the default cache; this run's may be elsewhere.
	f=$PROJECT/Pulumi.$STACK.yaml
	if [[ -f $f ]]; then
		yaml=$(<"$f")
		printf '%s\n' "${yaml//"~/.cache/kubeha/"/"$CACHE/"}" >"$f"
	fi
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
	main_lab_only
	ensure_node
	# Before anything changes: the hosts of a stack that a running pulumi works on stay.
	clear_stale_locks
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
	main_lab_only
	ensure_node
	if [[ -d $LABDIR/state/.pulumi ]] && [[ -d $PROJECT ]]; then
		clear_stale_locks
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
	main_lab_only
	ensure_node
	clear_stale_locks
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
