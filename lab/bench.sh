#!/usr/bin/env bash
# lab/bench.sh [--skip-9] [--keep] [--replace-lab] — a benchmark of kubeha on the lab with the
# real Pulumi engine (figures to compare, not a timed test; nothing here passes or fails on time):
#   (a) first `pulumi up`, 3 masters + 2 workers + 2 lb hosts (lab/run.sh up, its phase first_up)
#   (b) a no-op `pulumi up` and a `pulumi preview`, 3 times each: median and min
#   (c) SSH key rotation: a new ed25519 key authorized for kubeha and root on every host,
#       kubeha:sshPrivateKeyFile pointed at it (a stack file copy, --config-file), `pulumi up --refresh --run-program`
#       timed, units whose ActiveEnterTimestampMonotonic moved counted, logins with the new key
#   (d) lab down, then the first `pulumi up` with 3 masters + 9 workers + 2 lb hosts, and its
#       ratio to (a); then lab down                                          (--skip-9: not run)
# At the end the lab goes down (--keep: it stays up, as the last step left it). A lab already
# up is not replaced unless --replace-lab. On an error the lab is left up for inspection.
# Results: a markdown table on stdout, test-results/bench.md and test-results/bench.json
# (written also when a step fails, with "complete": false). Command logs: $KUBEHA_CACHE/lab/bench/logs/.
# Needs root, like the lab.
#
# Environment: KUBEHA_CACHE, KUBEHA_STACK, as lab/run.sh. KUBEHA_BENCH_OUT (default
# <repo>/test-results). Test seams: KUBEHA_BENCH_RUN and KUBEHA_BENCH_HOSTS name scripts run
# instead of lab/run.sh and lab/hosts.sh, KUBEHA_BENCH_SSH a command instead of ssh (the new
# key's check); with KUBEHA_BENCH_RUN set, the root check is skipped.
# shellcheck disable=SC2016 # the JavaScript in single quotes is node's, not the shell's
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
CACHE=${KUBEHA_CACHE:-$HOME/.cache/kubeha}
LABDIR=$CACHE/lab
PROJECT=$LABDIR/project
STACK=${KUBEHA_STACK:-lab}
HOSTSTATE=$LABDIR/${KUBEHA_LAB:-kubeha} # lab/hosts.sh's state: inventory.json, known_hosts
WORK=$LABDIR/bench
OUT=${KUBEHA_BENCH_OUT:-$ROOT/test-results}
RESULTS=$WORK/results.tsv
RUN=(bash "${KUBEHA_BENCH_RUN:-$ROOT/lab/run.sh}")
HOSTS=(bash "${KUBEHA_BENCH_HOSTS:-$ROOT/lab/hosts.sh}")
SSH=${KUBEHA_BENCH_SSH:-ssh}
UNITS=(etcd kube-apiserver kube-controller-manager kube-scheduler flanneld containerd kubelet kube-proxy keepalived kubeha-apiserver-lb)
REPEAT=3

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; }
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
record() { printf '%s\t%s\n' "$1" "$2" >>"$RESULTS"; } # record KEY VALUE (a key may repeat)

SKIP9=0 KEEP=0 REPLACE=0
while (($#)); do
	case $1 in
	--skip-9) SKIP9=1 ;;
	--keep) KEEP=1 ;;
	--replace-lab) REPLACE=1 ;;
	-h | --help) usage; exit 0 ;;
	*) usage; log "unknown argument '$1'"; exit 2 ;;
	esac
	shift
done

node_ok() { [[ $(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0) -ge 22 ]]; }
node_ok || export PATH="$CACHE/node24/bin:$PATH"
node_ok || die "needs Node.js >= 22 (npm run lab installs one under $CACHE/node24)"
[[ -n ${KUBEHA_BENCH_RUN:-} || $(id -u) == 0 ]] || die "must run as root (the lab needs systemd-nspawn, a bridge, cgroups)"

# ---------------------------------------------------------------- running and timing steps
# step NAME cmd…: run with output to logs/NAME.log, record NAME=<wall seconds>; on failure show
# the log's tail and stop (the lab stays up for inspection).
step() {
	local name=$1 t0 rc=0
	shift
	log "$name: $*"
	t0=$(now)
	"$@" >"$WORK/logs/$name.log" 2>&1 || rc=$?
	record "$name" "$(secs "$t0" "$(now)")"
	log "$name: $(tail -n 1 "$RESULTS" | cut -f2)s (exit $rc)"
	if ((rc != 0)); then
		tail -n 40 "$WORK/logs/$name.log" >&2
		die "$name failed (exit $rc; log $WORK/logs/$name.log). The lab is left up: npm run lab:down"
	fi
}

# The engine's own summary in a pulumi log: "Resources: 3 updated, 120 unchanged; Duration: 12s".
summary_of() {
	awk '/^Resources:/ { f = 1; next }
		f && /^[[:space:]]*$/ { f = 0 }
		f { sub(/^[[:space:]]*[-+~]*[[:space:]]*/, ""); r = r (r ? ", " : "") $0 }
		/^Duration:/ { d = $2 }
		END { printf "%s", r; if (d) printf "%s%s", (r ? "; " : ""), "pulumi Duration " d }' "$1"
}

# ---------------------------------------------------------------- lab facts
# "name ip role" for each host of the lab as it is (lab/hosts.sh's inventory), into LAB_HOSTS.
LAB_HOSTS=()
read_lab_hosts() {
	[[ -f $HOSTSTATE/inventory.json ]] || die "no lab inventory ($HOSTSTATE/inventory.json)"
	mapfile -t LAB_HOSTS < <(node -e '
		const inv = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
		for (const h of inv.hosts) console.log(`${h.name} ${h.ip} ${h.role}`);' "$HOSTSTATE/inventory.json")
	((${#LAB_HOSTS[@]})) || die "no hosts in $HOSTSTATE/inventory.json"
}

# A copy of the synced lab stack file (Pulumi.<stack>.yaml under the run.sh project: the cache
# path and the stack's encryption salt filled in) with config keys set, for --config-file.
# stack_copy OUT KEY=JSON…; each KEY must be in the file already; fails unless exactly those
# keys change.
stack_copy() {
	local out=$1
	shift
	NODE_PATH=$ROOT/node_modules node -e '
		const fs = require("fs"), YAML = require("yaml");
		const [src, out, ...sets] = process.argv.slice(1);
		const text = fs.readFileSync(src, "utf8");
		const doc = YAML.parseDocument(text);
		for (const s of sets) {
			const i = s.indexOf("=");
			if (!doc.hasIn(["config", s.slice(0, i)])) {
				console.error(`stack copy ${out}: ${src} has no ${s.slice(0, i)} to change`);
				process.exit(1);
			}
			doc.setIn(["config", s.slice(0, i)], JSON.parse(s.slice(i + 1)));
		}
		const edited = String(doc);
		const before = YAML.parse(text), after = YAML.parse(edited);
		const keys = new Set([...Object.keys(before.config), ...Object.keys(after.config)]);
		const changed = [...keys].filter((k) => JSON.stringify(before.config[k]) !== JSON.stringify(after.config[k])).sort();
		const wanted = sets.map((s) => s.slice(0, s.indexOf("="))).sort();
		if (JSON.stringify(changed) !== JSON.stringify(wanted)) {
			console.error(`stack copy ${out}: changed ${changed.join(", ") || "nothing"}, wanted ${wanted.join(", ")}`);
			process.exit(1);
		}
		if (before.encryptionsalt !== after.encryptionsalt) process.exit(1);
		fs.writeFileSync(out, edited);' "$PROJECT/Pulumi.$STACK.yaml" "$out" "$@"
}

# "host unit activeEnterMonotonic activeState" for every unit of UNITS on every host.
unit_times() {
	local name ip _r line
	for line in "${LAB_HOSTS[@]}"; do
		read -r name ip _r <<<"$line"
		"${HOSTS[@]}" ssh "$name" "systemctl show -p Id -p ActiveEnterTimestampMonotonic -p ActiveState ${UNITS[*]}" </dev/null |
			awk -v h="$name" 'BEGIN { RS = ""; FS = "\n" }
				{ id = ""; t = ""; s = ""
				  for (i = 1; i <= NF; i++) {
				    if ($i ~ /^Id=/) id = substr($i, 4)
				    else if ($i ~ /^ActiveEnterTimestampMonotonic=/) t = substr($i, 31)
				    else if ($i ~ /^ActiveState=/) s = substr($i, 13)
				  }
				  sub(/\.service$/, "", id)
				  if (id != "") print h, id, t, s }' ||
			die "reading unit times on $name failed"
	done
}

# ---------------------------------------------------------------- results
render() {
	mkdir -p "$OUT"
	node -e '
const fs = require("fs");
const [tsv, out] = process.argv.slice(1);
const all = {};
for (const line of fs.readFileSync(tsv, "utf8").split("\n")) {
    if (!line) continue;
    const i = line.indexOf("\t");
    (all[line.slice(0, i)] ??= []).push(line.slice(i + 1));
}
const one = (k) => all[k]?.[all[k].length - 1];
const num = (k) => (one(k) === undefined ? undefined : Number(one(k)));
const nums = (k) => (all[k] ?? []).map(Number);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b), m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const stats = (k) => (all[k]?.length ? { runs: nums(k), median: median(nums(k)), min: Math.min(...nums(k)) } : undefined);
const ratio = num("first_up_2w") > 0 && num("first_up_9w") !== undefined ? Math.round((num("first_up_9w") / num("first_up_2w")) * 100) / 100 : undefined;
const pairs = (k) => (all[k] ?? []).map((v) => v.split(" "));
const result = {
    complete: one("complete") === "1",
    date: one("date"), commit: one("commit"), machine: one("machine"), args: (one("args") ?? "").trim(),
    firstUp2Workers: { seconds: num("first_up_2w"), runUpSeconds: num("run_up"), toolchainSeconds: num("toolchain"), hostsSeconds: num("hosts_2w"), summary: one("first_up_2w_summary") },
    wrapperSeconds: num("wrapper"),
    noopUp: stats("noop_up") && { ...stats("noop_up"), notNoop: all.noop_up_changed ?? [] },
    preview: stats("preview") && { ...stats("preview"), notNoop: all.preview_changed ?? [] },
    sshKeyRotation: num("rotate_up") === undefined ? undefined : {
        seconds: num("rotate_up"), summary: one("rotate_up_summary"), unitsSeen: num("units_seen"),
        restarted: all.unit_restarted ?? [], started: all.unit_started ?? [], inactive: all.unit_inactive ?? [],
        loginsWithNewKey: Object.fromEntries(pairs("new_key_logins").map(([h, n]) => [h, Number(n)])),
    },
    firstUp9Workers: num("first_up_9w") === undefined ? undefined : { seconds: num("first_up_9w"), hostsSeconds: num("hosts_9w"), summary: one("first_up_9w_summary"), ratioTo2Workers: ratio },
    notes: all.note ?? [],
};
fs.writeFileSync(`${out}/bench.json`, JSON.stringify(result, null, 1) + "\n");
const f1 = (x) => x.toFixed(1);
const s = (x) => (x === undefined || Number.isNaN(x) ? "–" : `${f1(x)} s`);
const ms = (st) => (st ? `median ${f1(st.median)} s, min ${f1(st.min)} s (${st.runs.map(f1).join(", ")})` : "–");
const r = result.sshKeyRotation;
const rows = [
    ["first `pulumi up`, 3 masters + 2 workers + 2 lb hosts (lab/run.sh up, phase first_up)", s(result.firstUp2Workers.seconds), result.firstUp2Workers.summary ?? ""],
    ["`lab/run.sh up` in all: toolchain (cached), hosts, first up", s(result.firstUp2Workers.runUpSeconds), `toolchain ${s(result.firstUp2Workers.toolchainSeconds)}, hosts ${s(result.firstUp2Workers.hostsSeconds)}`],
    ["`lab/run.sh pulumi config` (the wrapper and the CLI start in each `lab/run.sh pulumi` figure below)", s(result.wrapperSeconds), ""],
    [`no-op \`pulumi up\` (${result.noopUp?.runs.length ?? 0} runs)`, ms(result.noopUp), result.noopUp?.notNoop.length ? `NOT a no-op: run ${result.noopUp.notNoop.join(", ")}` : ""],
    [`\`pulumi preview\` (${result.preview?.runs.length ?? 0} runs)`, ms(result.preview), result.preview?.notNoop.length ? `changes previewed: run ${result.preview.notNoop.join(", ")}` : ""],
    ["SSH key rotation `pulumi up --refresh --run-program` (new kubeha:sshPrivateKeyFile, every host read through it)", s(r?.seconds), r?.summary ?? ""],
    ["units restarted by the rotation", r ? `${r.restarted.length} of ${r.unitsSeen}` : "–",
        r ? [r.restarted.length ? `restarted: ${r.restarted.join(", ")}` : "", r.started.length ? `started: ${r.started.join(", ")}` : "", r.inactive.length ? `not active after: ${r.inactive.join(", ")}` : ""].filter(Boolean).join("; ") : ""],
    ["logins as kubeha with the new key during the rotation", r ? `${Object.values(r.loginsWithNewKey).reduce((a, b) => a + b, 0)} on ${Object.values(r.loginsWithNewKey).filter((n) => n > 0).length} of ${Object.keys(r.loginsWithNewKey).length} hosts` : "–", ""],
    ["first `pulumi up`, 3 masters + 9 workers + 2 lb hosts (lab/run.sh pulumi up)", s(result.firstUp9Workers?.seconds),
        result.firstUp9Workers ? `${result.firstUp9Workers.summary ?? ""}; hosts up ${s(result.firstUp9Workers.hostsSeconds)}` : one("skip9") ? "not run (--skip-9)" : ""],
    ["ratio 9-worker / 2-worker first up", result.firstUp9Workers?.ratioTo2Workers === undefined ? "–" : String(result.firstUp9Workers.ratioTo2Workers), ""],
];
const esc = (x) => String(x).replace(/\|/g, "\\|");
const md = [
    `# kubeha lab benchmark${result.complete ? "" : " (INCOMPLETE: a step failed, see notes)"}`, "",
    `${result.date} · commit ${result.commit} · ${result.machine} · \`lab/bench.sh${result.args ? ` ${result.args}` : ""}\``, "",
    "| Figure | Value | Detail |", "| --- | --- | --- |",
    ...rows.map((row) => `| ${row.map(esc).join(" | ")} |`),
    ...(result.notes.length ? ["", ...result.notes.map((n) => `- ${n}`)] : []), "",
].join("\n");
fs.writeFileSync(`${out}/bench.md`, md);
process.stdout.write(md);' "$RESULTS" "$OUT"
}

finish() {
	local rc=$?
	trap - EXIT
	if ((rc != 0)); then record note "stopped with exit $rc before the end (logs: $WORK/logs/)"; fi
	if [[ -f $RESULTS ]]; then render || log "rendering the results failed"; fi
	exit "$rc"
}

# ---------------------------------------------------------------- the steps
bench_first_up_2w() {
	local t0 timings=$LABDIR/timings.json
	t0=$(date +%s)
	step run_up env MASTERS=3 WORKERS=2 LBS=2 "${RUN[@]}" up
	[[ -f $timings && $(stat -c %Y "$timings") -ge $t0 ]] || die "lab/run.sh up did not write $timings"
	node -e '
		const t = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
		for (const [k, v] of [["first_up_2w", t.first_up], ["toolchain", t.toolchain], ["hosts_2w", t.lab_up]]) if (v !== undefined) console.log(`${k}\t${v}`);' \
		"$timings" >>"$RESULTS"
	grep -q '^first_up_2w	' "$RESULTS" || die "no first_up phase in $timings"
	record first_up_2w_summary "$(summary_of "$WORK/logs/run_up.log")"
}

bench_noop() {
	local i rc kind t0 args
	step wrapper "${RUN[@]}" pulumi config
	for ((i = 1; i <= REPEAT; i++)); do
		for kind in noop_up preview; do
			args=(up --yes --skip-preview)
			[[ $kind == preview ]] && args=(preview)
			rc=0
			t0=$(now)
			"${RUN[@]}" pulumi "${args[@]}" --expect-no-changes --suppress-progress >"$WORK/logs/$kind-$i.log" 2>&1 || rc=$?
			record "$kind" "$(secs "$t0" "$(now)")"
			log "$kind #$i: $(tail -n 1 "$RESULTS" | cut -f2)s (exit $rc)"
			if ((rc != 0)); then
				# --expect-no-changes fails when there were changes: the figure is recorded, flagged.
				record "${kind}_changed" "$i"
				record note "$kind #$i exited $rc (not a no-op, or an error): $(summary_of "$WORK/logs/$kind-$i.log"); log $WORK/logs/$kind-$i.log"
			fi
		done
	done
}

bench_rotation() {
	local key=$WORK/id_ed25519_rotated fp name ip _r line before=$WORK/units-before.txt after=$WORK/units-after.txt since n h u t s t2 s2
	read_lab_hosts
	rm -f "$key" "$key.pub"
	ssh-keygen -q -t ed25519 -N '' -C "kubeha-bench-rotated-$(date +%s)" -f "$key"
	fp=$(ssh-keygen -lf "$key.pub" | awk '{ print $2 }')
	log "rotation: new key $fp authorized for kubeha and root on every host"
	for line in "${LAB_HOSTS[@]}"; do
		read -r name ip _r <<<"$line"
		"${HOSTS[@]}" ssh "$name" 'k=$(cat); for f in /root/.ssh/authorized_keys /home/kubeha/.ssh/authorized_keys; do grep -qxF "$k" "$f" || printf "%s\n" "$k" >>"$f"; done' <"$key.pub" ||
			die "authorizing the new key on $name failed"
		"$SSH" -i "$key" -o IdentitiesOnly=yes -o IdentityAgent=none -o UserKnownHostsFile="$HOSTSTATE/known_hosts" \
			-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=10 \
			"kubeha@$ip" true </dev/null || die "kubeha@$name does not accept the new key"
	done
	stack_copy "$WORK/Pulumi.$STACK-rotated-key.yaml" "kubeha:sshPrivateKeyFile=\"$key\""
	unit_times >"$before"
	since=$(date +%s)
	# --refresh --run-program: every host is read through the new key (SSH settings are kubeha's
	# provider configuration, which the refresh takes from the program, not from the last update).
	step rotate_up "${RUN[@]}" pulumi up --yes --skip-preview --suppress-progress --refresh --run-program --config-file "$WORK/Pulumi.$STACK-rotated-key.yaml"
	record rotate_up_summary "$(summary_of "$WORK/logs/rotate_up.log")"
	unit_times >"$after"
	record units_seen "$(awk '$3 != 0 && $3 != ""' "$before" | wc -l)"
	while read -r h u t s; do
		read -r t2 s2 < <(awk -v h="$h" -v u="$u" '$1 == h && $2 == u { print $3, $4 }' "$after") || { t2="" s2=""; }
		if [[ $t != 0 && -n $t && $t2 != "$t" ]]; then record unit_restarted "$h/$u"; fi
		if [[ ($t == 0 || -z $t) && -n $t2 && $t2 != 0 ]]; then record unit_started "$h/$u"; fi
		if [[ $s == active && $s2 != active ]]; then record unit_inactive "$h/$u ($s2)"; fi
	done <"$before"
	for line in "${LAB_HOSTS[@]}"; do
		read -r name ip _r <<<"$line"
		n=$("${HOSTS[@]}" ssh "$name" "journalctl -q -t sshd -t sshd-session --since @$since -o cat | grep -c 'Accepted publickey for kubeha .*$fp' || true" </dev/null) ||
			n="?"
		record new_key_logins "$name ${n:-0}"
	done
}

bench_first_up_9w() {
	local workers
	step down_2w "${RUN[@]}" down
	[[ ! -f $LABDIR/salt ]] || die "lab/run.sh down left the $STACK stack behind ($LABDIR/salt)"
	step hosts_9w env MASTERS=3 WORKERS=9 LBS=2 "${HOSTS[@]}" up
	# A run.sh call syncs the project and creates the stack (with its salt) for the copy.
	step wrapper_9w "${RUN[@]}" pulumi config
	read_lab_hosts
	workers=$(printf '%s\n' "${LAB_HOSTS[@]}" | awk '$3 == "worker" { printf "%s\"%s=%s\"", (n++ ? "," : ""), $1, $2 }')
	[[ $(grep -o '=' <<<"$workers" | wc -l) == 9 ]] || die "the lab has not 9 workers: [$workers]"
	stack_copy "$WORK/Pulumi.$STACK-9-workers.yaml" "kubeha:workers=[$workers]"
	step first_up_9w "${RUN[@]}" pulumi up --yes --skip-preview --suppress-progress --config-file "$WORK/Pulumi.$STACK-9-workers.yaml"
	record first_up_9w_summary "$(summary_of "$WORK/logs/first_up_9w.log")"
	# As lab/run.sh up does: the admin kubeconfig of the cluster now up.
	"${RUN[@]}" pulumi stack output kubeconfig --show-secrets >"$LABDIR/admin.conf.new" 2>"$WORK/logs/admin_conf_9w.log" ||
		die "reading the 9-worker stack's kubeconfig failed (log $WORK/logs/admin_conf_9w.log)"
	chmod 600 "$LABDIR/admin.conf.new"
	mv "$LABDIR/admin.conf.new" "$LABDIR/admin.conf"
}

main() {
	if [[ -d $HOSTSTATE/hosts ]] && compgen -G "$HOSTSTATE/hosts/*/meta" >/dev/null && ((!REPLACE)); then
		die "a lab is up ($HOSTSTATE/hosts): the bench starts from fresh hosts. npm run lab:down first, or pass --replace-lab"
	fi
	mkdir -p "$WORK/logs"
	rm -rf "${WORK:?}/logs/"* "$RESULTS"
	trap finish EXIT
	record date "$(date -u +%FT%TZ)"
	record commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || echo '+dirty')"
	record machine "$(nproc) cores, $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r)"
	record args "$([[ $SKIP9 == 1 ]] && printf -- '--skip-9 ')$([[ $KEEP == 1 ]] && printf -- '--keep ')$([[ $REPLACE == 1 ]] && printf -- '--replace-lab')"

	bench_first_up_2w
	bench_noop
	bench_rotation
	if ((SKIP9)); then
		record skip9 1
	else
		bench_first_up_9w
	fi
	if ((KEEP)); then
		record note "lab left up (--keep): $( ((SKIP9)) && echo "3 masters, 2 workers, 2 lb hosts; its last up used $WORK/Pulumi.$STACK-rotated-key.yaml" || echo "3 masters, 9 workers, 2 lb hosts, up from $WORK/Pulumi.$STACK-9-workers.yaml"); pass the same --config-file to lab/run.sh pulumi"
	else
		step down_end "${RUN[@]}" down
	fi
	record complete 1
}

main
