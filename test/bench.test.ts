// lab/bench.sh without a lab: lab/run.sh, lab/hosts.sh and ssh are replaced by fakes (the
// script's KUBEHA_BENCH_* seams) that keep host and unit state in a temporary cache, so the
// argument handling, the steps' order, the stack file copies, the unit restart count and the
// table come out of the real script. What the real lab would answer is not tested here.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parse as parseYaml } from "yaml";

const ROOT = resolve(__dirname, "..");
const BENCH = join(ROOT, "lab/bench.sh");

/** lab/hosts.sh: up/down of MASTERS/WORKERS/LBS hosts (inventory.json, hosts/<name>/meta), ssh answering systemctl, journalctl and authorized_keys. */
const FAKE_HOSTS = String.raw`#!/usr/bin/env bash
set -euo pipefail
S=$KUBEHA_CACHE/lab/kubeha
F=$FAKE
echo "hosts $* MASTERS=\${MASTERS:-} WORKERS=\${WORKERS:-} LBS=\${LBS:-}" >>"$F/calls.log"
case $1 in
up)
	rm -rf "$S/hosts" "$F/units"; mkdir -p "$S/hosts" "$F/units"
	: >"$S/known_hosts"
	hosts=()
	for ((i = 1; i <= \${MASTERS:-3}; i++)); do hosts+=("k8s-master0$i 198.18.0.1$i master"); done
	for ((i = 1; i <= \${WORKERS:-2}; i++)); do hosts+=("k8s-node0$i 198.18.0.2$i worker"); done
	for ((i = 1; i <= \${LBS:-2}; i++)); do hosts+=("k8s-ha0$i 198.18.0.3$i lb"); done
	json=""
	for h in "\${hosts[@]}"; do
		read -r n ip role <<<"$h"
		mkdir -p "$S/hosts/$n"; echo "$h" >"$S/hosts/$n/meta"
		json+="\${json:+,}{\"name\": \"$n\", \"ip\": \"$ip\", \"role\": \"$role\"}"
		case $role in
		master) units="etcd kube-apiserver kube-controller-manager kube-scheduler flanneld" ;;
		worker) units="flanneld containerd kubelet kube-proxy" ;;
		lb) units="keepalived kubeha-apiserver-lb" ;;
		esac
		t=1000; for u in $units; do t=$((t + 7)); echo "$u $t active"; done >"$F/units/$n"
	done
	echo "{\"hosts\": [$json]}" >"$S/inventory.json"
	;;
down) rm -rf "$S/hosts" "$S/inventory.json" ;;
ssh)
	host=$2 cmd=$3
	[[ -d $S/hosts/$host ]] || { echo "unknown lab host $host" >&2; exit 1; }
	case $cmd in
	systemctl\ show*)
		for u in \${cmd##*ActiveState }; do
			line=$(awk -v u="$u" '$1 == u' "$F/units/$host")
			read -r _ t s <<<"\${line:-$u 0 inactive}"
			printf 'ActiveState=%s\nId=%s.service\nActiveEnterTimestampMonotonic=%s\n\n' "$s" "$u" "$t"
		done ;;
	journalctl*) cat "$F/logins.$host" 2>/dev/null || echo 0 ;;
	*authorized_keys*) cat >>"$F/authorized.$host" ;;
	*) echo "fake hosts: unexpected command $cmd" >&2; exit 1 ;;
	esac ;;
esac
`;

/** lab/run.sh: up (hosts, stack, timings.json), down, pulumi <args> (project sync with the cache path and salt, as run.sh). */
const FAKE_RUN = String.raw`#!/usr/bin/env bash
set -euo pipefail
F=$FAKE
LABDIR=$KUBEHA_CACHE/lab
PROJECT=$LABDIR/project
echo "run $* MASTERS=\${MASTERS:-} WORKERS=\${WORKERS:-}" >>"$F/calls.log"
stack() {
	mkdir -p "$PROJECT"
	[[ -f $LABDIR/salt ]] || echo "encryptionsalt: v1:fake-salt-$RANDOM" >"$LABDIR/salt"
	sed "s|~/.cache/kubeha/|$KUBEHA_CACHE/|g" "$REPO/Pulumi.lab.yaml" >"$PROJECT/Pulumi.lab.yaml"
	cat "$LABDIR/salt" >>"$PROJECT/Pulumi.lab.yaml"
}
summary() { printf 'Previewing update (lab):\n\nResources:\n    %s\n    %s\n\nDuration: %s\n' "$@"; }
case $1 in
up)
	bash "$FAKE_HOSTS_SH" up
	stack
	echo '{"toolchain": 2.1, "lab_up": 3.2, "first_up": 61.5, "destroy": 30}' >"$LABDIR/timings.json"
	summary "+ 151 created" "151 total" 1m1s ;;
down) rm -f "$LABDIR/salt"; bash "$FAKE_HOSTS_SH" down ;;
pulumi)
	shift
	stack
	n=$(( $(cat "$F/pulumi-count" 2>/dev/null || echo 0) + 1 )); echo "$n" >"$F/pulumi-count"
	[[ " $* " != *" $FAIL_ON "* ]] || { echo "error: fake failure on $FAIL_ON" >&2; exit 1; }
	case "$*" in
	*rotated-key*)
		cp "\${@: -1}" "$F/rotated-copy.yaml"
		awk '$1 == "kube-apiserver" { $2 += 5 } 1' "$F/units/k8s-master01" >"$F/u" && mv "$F/u" "$F/units/k8s-master01"
		awk '$1 == "kubelet" { $2 += 5 } 1' "$F/units/k8s-node01" >"$F/u" && mv "$F/u" "$F/units/k8s-node01"
		echo 3 >"$F/logins.k8s-master01"
		summary "~ 40 updated" "111 unchanged" 25s ;;
	*9-workers*) cp "\${@: -1}" "$F/nine-copy.yaml"; summary "+ 270 created" "270 total" 1m40s ;;
	up* | preview*)
		# Runs of different lengths (median and min are the script's); the second no-op up finds
		# a change: --expect-no-changes fails it.
		i=$(grep -c "^run pulumi \${1}" "$F/calls.log")
		[[ -z $FAKE_SLEEPS ]] || sleep "$(echo "$FAKE_SLEEPS" | cut -d' ' -f"$i")"
		if [[ $1 == up && $i == 2 ]]; then summary "~ 1 updated" "150 unchanged" 12s; exit 255; fi
		summary "151 unchanged" "" 11s ;;
	stack\ output*) echo "apiVersion: v1 # fake kubeconfig" ;;
	*) ;;
	esac ;;
esac
`;

interface Run {
    status: number | null;
    stdout: string;
    stderr: string;
    dir: string;
    cache: string;
    out: string;
    calls: string[];
}

function bench(args: string[], opts: { failOn?: string; sleeps?: string; prepare?: (cache: string) => void } = {}): Run {
    const dir = mkdtempSync(join(tmpdir(), "kubeha-bench-"));
    const cache = join(dir, "cache");
    const out = join(dir, "out");
    const fake = join(dir, "fake");
    mkdirSync(join(cache, "lab/kubeha"), { recursive: true });
    mkdirSync(fake);
    const write = (name: string, text: string) => {
        writeFileSync(join(fake, name), text);
        chmodSync(join(fake, name), 0o755);
    };
    // String.raw keeps the backslash of \${ (needed inside a template): drop it.
    write("hosts.sh", FAKE_HOSTS.replaceAll("\\${", "${"));
    write("run.sh", FAKE_RUN.replaceAll("\\${", "${"));
    write("ssh", `#!/bin/sh\necho "ssh $*" >>"$FAKE/calls.log"\n`);
    writeFileSync(join(fake, "calls.log"), "");
    opts.prepare?.(cache);
    const r = spawnSync("bash", [BENCH, ...args], {
        encoding: "utf8",
        env: {
            ...process.env, KUBEHA_CACHE: cache, KUBEHA_BENCH_OUT: out, KUBEHA_BENCH_RUN: join(fake, "run.sh"), KUBEHA_BENCH_HOSTS: join(fake, "hosts.sh"),
            KUBEHA_BENCH_SSH: join(fake, "ssh"), FAKE: fake, FAKE_HOSTS_SH: join(fake, "hosts.sh"), REPO: ROOT, FAIL_ON: opts.failOn ?? "never", FAKE_SLEEPS: opts.sleeps ?? "",
        },
    });
    const calls = readFileSync(join(fake, "calls.log"), "utf8").split("\n").filter(Boolean);
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, dir: fake, cache, out, calls };
}

const json = (r: Run) => JSON.parse(readFileSync(join(r.out, "bench.json"), "utf8"));

describe("lab/bench.sh (fake lab)", function () {
    this.timeout(90_000);

    it("is valid bash, and shellcheck-clean where shellcheck is installed", function () {
        assert.equal(spawnSync("bash", ["-n", BENCH]).status, 0);
        const sc = spawnSync("shellcheck", [BENCH], { encoding: "utf8" });
        if (sc.error) return this.skip();
        assert.equal(sc.status, 0, sc.stdout);
    });

    describe("a whole run", () => {
        let r: Run;
        before(() => {
            r = bench([], { sleeps: "0.5 0.1 0.2" });
        });

        it("runs every step in order and ends with the lab down", () => {
            assert.equal(r.status, 0, r.stderr);
            const steps = r.calls.filter((c) => !c.startsWith("ssh ") && !/^hosts ssh /.test(c)).map((c) => c.replace(/ --config-file \S+/, " --config-file <copy>"));
            assert.deepEqual(steps, [
                "run up MASTERS=3 WORKERS=2",
                "hosts up MASTERS=3 WORKERS=2 LBS=2",
                "run pulumi config MASTERS= WORKERS=",
                "run pulumi up --yes --skip-preview --expect-no-changes --suppress-progress MASTERS= WORKERS=",
                "run pulumi preview --expect-no-changes --suppress-progress MASTERS= WORKERS=",
                "run pulumi up --yes --skip-preview --expect-no-changes --suppress-progress MASTERS= WORKERS=",
                "run pulumi preview --expect-no-changes --suppress-progress MASTERS= WORKERS=",
                "run pulumi up --yes --skip-preview --expect-no-changes --suppress-progress MASTERS= WORKERS=",
                "run pulumi preview --expect-no-changes --suppress-progress MASTERS= WORKERS=",
                "run pulumi up --yes --skip-preview --suppress-progress --refresh --run-program --config-file <copy> MASTERS= WORKERS=",
                "run down MASTERS= WORKERS=",
                "hosts down MASTERS= WORKERS= LBS=",
                "hosts up MASTERS=3 WORKERS=9 LBS=2",
                "run pulumi config MASTERS= WORKERS=",
                "run pulumi up --yes --skip-preview --suppress-progress --config-file <copy> MASTERS= WORKERS=",
                "run pulumi stack output kubeconfig --show-secrets MASTERS= WORKERS=",
                "run down MASTERS= WORKERS=",
                "hosts down MASTERS= WORKERS= LBS=",
            ]);
        });

        it("authorizes the new key for kubeha and root on every host and checks kubeha accepts it", () => {
            const pub = readFileSync(join(r.cache, "lab/bench/id_ed25519_rotated.pub"), "utf8");
            assert.match(pub, /^ssh-ed25519 /);
            for (const h of ["k8s-master01", "k8s-master02", "k8s-master03", "k8s-node01", "k8s-node02", "k8s-ha01", "k8s-ha02"]) {
                assert.equal(readFileSync(join(r.dir, `authorized.${h}`), "utf8"), pub, h);
            }
            const checks = r.calls.filter((c) => c.startsWith("ssh "));
            assert.equal(checks.length, 7);
            assert.match(checks[0], new RegExp(`-i ${join(r.cache, "lab/bench/id_ed25519_rotated")} .*StrictHostKeyChecking=yes .* kubeha@198\\.18\\.0\\.11 true$`));
        });

        it("passes stack file copies that change only the key file, then only the workers (9, from the lab's inventory)", () => {
            const base = parseYaml(readFileSync(join(r.cache, "lab/project/Pulumi.lab.yaml"), "utf8"));
            const rotated = parseYaml(readFileSync(join(r.dir, "rotated-copy.yaml"), "utf8"));
            const nine = parseYaml(readFileSync(join(r.dir, "nine-copy.yaml"), "utf8"));
            assert.match(rotated.encryptionsalt, /^v1:fake-salt-/);
            assert.equal(rotated.config["kubeha:sshPrivateKeyFile"], join(r.cache, "lab/bench/id_ed25519_rotated"));
            assert.deepEqual({ ...rotated.config, "kubeha:sshPrivateKeyFile": "x", "kubeha:workers": "x" }, { ...base.config, "kubeha:sshPrivateKeyFile": "x", "kubeha:workers": "x" });
            assert.deepEqual(rotated.config["kubeha:workers"], ["k8s-node01=198.18.0.21", "k8s-node02=198.18.0.22"]);
            assert.equal(nine.encryptionsalt, base.encryptionsalt, "the salt of the stack created after the 9-worker hosts came up");
            assert.deepEqual(nine.config["kubeha:workers"], [1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => `k8s-node0${i}=198.18.0.2${i}`));
            assert.deepEqual({ ...nine.config, "kubeha:workers": "x" }, { ...base.config, "kubeha:workers": "x" });
            assert.match(nine.config["kubeha:binaryDir"], new RegExp(`^${r.cache}/`), "the run's cache path, as run.sh syncs it");
        });

        it("writes bench.json with each figure", () => {
            const b = json(r);
            assert.equal(b.complete, true);
            assert.equal(b.firstUp2Workers.seconds, 61.5);
            assert.equal(b.firstUp2Workers.toolchainSeconds, 2.1);
            assert.equal(b.firstUp2Workers.hostsSeconds, 3.2);
            assert.equal(b.firstUp2Workers.summary, "151 created, 151 total; pulumi Duration 1m1s");
            for (const k of ["noopUp", "preview"]) {
                const sorted = [...b[k].runs].sort((x: number, y: number) => x - y);
                assert.equal(b[k].runs.length, 3, k);
                assert.ok(b[k].runs[0] >= 0.5 && sorted[0] >= 0.1, `${k}: ${b[k].runs}`);
                assert.deepEqual([b[k].median, b[k].min], [sorted[1], sorted[0]], k);
            }
            assert.deepEqual(b.noopUp.notNoop, ["2"]);
            assert.deepEqual(b.preview.notNoop, []);
            assert.match(b.notes[0], /^noop_up #2 exited 255 \(not a no-op, or an error\): 1 updated, 150 unchanged; pulumi Duration 12s/);
            const rot = b.sshKeyRotation;
            assert.equal(rot.summary, "40 updated, 111 unchanged; pulumi Duration 25s");
            assert.deepEqual(rot.restarted, ["k8s-master01/kube-apiserver", "k8s-node01/kubelet"]);
            assert.deepEqual([rot.started, rot.inactive], [[], []]);
            assert.equal(rot.unitsSeen, 3 * 5 + 2 * 4 + 2 * 2);
            assert.deepEqual(rot.loginsWithNewKey, { "k8s-master01": 3, "k8s-master02": 0, "k8s-master03": 0, "k8s-node01": 0, "k8s-node02": 0, "k8s-ha01": 0, "k8s-ha02": 0 });
            assert.equal(b.firstUp9Workers.summary, "270 created, 270 total; pulumi Duration 1m40s");
            assert.equal(b.firstUp9Workers.ratioTo2Workers, Math.round((b.firstUp9Workers.seconds / 61.5) * 100) / 100);
            assert.equal(readFileSync(join(r.cache, "lab/admin.conf"), "utf8"), "apiVersion: v1 # fake kubeconfig\n");
        });

        it("prints the markdown table and writes it to bench.md", () => {
            const md = readFileSync(join(r.out, "bench.md"), "utf8");
            assert.equal(r.stdout, md);
            assert.match(md, /^# kubeha lab benchmark\n/);
            assert.match(md, /\n\| Figure \| Value \| Detail \|\n\| --- \| --- \| --- \|\n/);
            assert.match(md, /\| first `pulumi up`, 3 masters \+ 2 workers \+ 2 lb hosts \(lab\/run\.sh up, phase first_up\) \| 61\.5 s \| 151 created, 151 total; pulumi Duration 1m1s \|/);
            assert.match(md, /\| no-op `pulumi up` \(3 runs\) \| median [\d.]+ s, min [\d.]+ s \([\d., ]+\) \| NOT a no-op: run 2 \|/);
            assert.match(md, /\| units restarted by the rotation \| 2 of 27 \| restarted: k8s-master01\/kube-apiserver, k8s-node01\/kubelet \|/);
            assert.match(md, /\| logins as kubeha with the new key during the rotation \| 3 on 1 of 7 hosts \|/);
            assert.match(md, /\| ratio 9-worker \/ 2-worker first up \| [\d.]+ \|/);
            assert.match(md, /· `lab\/bench\.sh`\n/);
            assert.equal(md.split("\n").filter((l) => l.startsWith("| ") && !l.startsWith("| Figure") && !l.startsWith("| ---")).length, 10);
        });
    });

    it("--skip-9 --keep: no 9-worker lab, no final down, the lab left up said so", () => {
        const r = bench(["--skip-9", "--keep"]);
        assert.equal(r.status, 0, r.stderr);
        assert.ok(!r.calls.some((c) => /WORKERS=9|^run down|^hosts down/.test(c)), r.calls.join("\n"));
        const b = json(r);
        assert.equal(b.complete, true);
        assert.equal(b.firstUp9Workers, undefined);
        assert.match(b.notes.at(-1), /^lab left up \(--keep\): 3 masters, 2 workers, 2 lb hosts; its last up used .*Pulumi\.lab-rotated-key\.yaml/);
        assert.match(readFileSync(join(r.out, "bench.md"), "utf8"), /\| first `pulumi up`, 3 masters \+ 9 workers \+ 2 lb hosts \(lab\/run\.sh pulumi up\) \| – \| not run \(--skip-9\) \|/);
        assert.ok(existsSync(join(r.cache, "lab/kubeha/inventory.json")));
    });

    it("refuses an unknown argument with the usage, measuring nothing", () => {
        const r = bench(["--skip9"]);
        assert.equal(r.status, 2);
        assert.match(r.stderr, /unknown argument '--skip9'/);
        assert.match(r.stderr, /--skip-9/);
        assert.deepEqual(r.calls, []);
        assert.ok(!existsSync(join(r.out, "bench.json")));
    });

    it("does not replace a lab that is up unless --replace-lab", () => {
        const prepare = (cache: string) => {
            mkdirSync(join(cache, "lab/kubeha/hosts/k8s-master01"), { recursive: true });
            writeFileSync(join(cache, "lab/kubeha/hosts/k8s-master01/meta"), "k8s-master01 198.18.0.11 master\n");
        };
        const r = bench(["--skip-9"], { prepare });
        assert.equal(r.status, 1);
        assert.match(r.stderr, /a lab is up .*npm run lab:down first, or pass --replace-lab/);
        assert.deepEqual(r.calls, []);
        assert.equal(bench(["--skip-9", "--replace-lab"], { prepare }).status, 0);
    });

    it("stops at a failing step, leaves the lab up and still writes what it measured, marked incomplete", () => {
        const r = bench([], { failOn: "--config-file" });
        assert.equal(r.status, 1);
        assert.match(r.stderr, /rotate_up failed \(exit 1; log .*rotate_up\.log\)\. The lab is left up: npm run lab:down/);
        assert.match(r.stderr, /error: fake failure on --config-file/);
        assert.ok(!r.calls.some((c) => /^run down/.test(c)));
        const b = json(r);
        assert.equal(b.complete, false);
        assert.equal(b.firstUp2Workers.seconds, 61.5);
        assert.equal(b.noopUp.runs.length, 3);
        assert.ok(b.sshKeyRotation.seconds >= 0);
        assert.match(b.notes.at(-1), /^stopped with exit 1 before the end/);
        assert.match(readFileSync(join(r.out, "bench.md"), "utf8"), /^# kubeha lab benchmark \(INCOMPLETE: a step failed, see notes\)/);
    });
});
