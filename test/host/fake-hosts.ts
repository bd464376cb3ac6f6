// Fake hosts for the host layer's tests: each "host" is a directory with its own kubeha state and
// a fake systemctl/journalctl, and the real PROBE/APPLY scripts run there with /bin/sh — what the
// SSH pool would run on a real host, minus SSH. Every systemctl call is logged, host by host, in
// one shared file, so tests read the order of restarts across hosts.
import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { Runner } from "../../host/provider";
import type { ExecResult, Target } from "../../host/ssh";

const SYSTEMCTL = `#!/bin/sh
d=$FAKE_UNITS
mkdir -p "$d"
log() { echo "$FAKE_HOST $*" >>"$FAKE_LOG"; }
case $1 in
show)
  shift; props=
  while [ "$1" = -p ]; do props="$props $2"; shift 2; done
  for p in $props; do
    case $p in
    ActiveState) echo "ActiveState=$(cat "$d/$1.active" 2>/dev/null || echo inactive)" ;;
    UnitFileState) echo "UnitFileState=$(cat "$d/$1.enabled" 2>/dev/null)" ;;
    *) echo "$p=fake" ;;
    esac
  done ;;
is-active) [ "$2" = -q ] && u=$3 || u=$2; [ "$(cat "$d/$u.active" 2>/dev/null)" = active ] ;;
enable) echo enabled >"$d/$2.enabled"; log enable "$2" ;;
disable) rm -f "$d/$2.enabled"; log disable "$2" ;;
start) [ "$2" = --no-block ] && u=$3 || u=$2; [ -f "$d/$u.fail" ] && exit 1; echo active >"$d/$u.active"; log start "$u" ;;
restart|reload) [ -f "$d/$2.fail" ] && exit 1; echo active >"$d/$2.active"; log "$1" "$2" ;;
stop) echo inactive >"$d/$2.active"; log stop "$2" ;;
daemon-reload) log daemon-reload ;;
esac
`;
const JOURNALCTL = `#!/bin/sh
echo "2026-12-02T10:00:00 fake $FAKE_HOST: $3 exited: bad flag --frobnicate"
`;

export class FakeHosts implements Runner {
    readonly dir: string;
    readonly log: string;
    private readonly bin: string;

    constructor() {
        this.dir = mkdtempSync(join(tmpdir(), "kubeha-fake-hosts-"));
        this.bin = join(this.dir, "bin");
        this.log = join(this.dir, "calls.log");
        mkdirSync(this.bin);
        writeFileSync(join(this.bin, "systemctl"), SYSTEMCTL);
        writeFileSync(join(this.bin, "journalctl"), JOURNALCTL);
        chmodSync(join(this.bin, "systemctl"), 0o755);
        chmodSync(join(this.bin, "journalctl"), 0o755);
        writeFileSync(this.log, "");
    }

    /** A host's own root: managed files live under it (tests use paths below root(host)). */
    root(host: string): string {
        const r = join(this.dir, "hosts", host);
        mkdirSync(r, { recursive: true });
        return r;
    }

    unitState(host: string, unit: string): string | undefined {
        const f = join(this.root(host), "units", `${unit}.active`);
        return existsSync(f) ? readFileSync(f, "utf8").trim() : undefined;
    }

    setUnit(host: string, unit: string, state: "active" | "inactive" | "fail"): void {
        mkdirSync(join(this.root(host), "units"), { recursive: true });
        if (state === "fail") writeFileSync(join(this.root(host), "units", `${unit}.fail`), "");
        else writeFileSync(join(this.root(host), "units", `${unit}.active`), `${state}\n`);
    }

    /** systemctl calls as "host verb unit" lines, in the order they happened. */
    calls(filter?: RegExp): string[] {
        return readFileSync(this.log, "utf8").split("\n").filter(Boolean).filter((l) => !filter || filter.test(l));
    }

    clearCalls(): void {
        writeFileSync(this.log, "");
    }

    run(t: Target, script: string, stdin?: string | (() => Readable)): Promise<ExecResult> {
        const root = this.root(t.name);
        return new Promise((resolve, reject) => {
            const p = spawn("/bin/sh", ["-c", script], {
                env: {
                    ...process.env, PATH: `${this.bin}:${process.env.PATH}`, KUBEHA_STATE_DIR: join(root, "state"),
                    FAKE_UNITS: join(root, "units"), FAKE_LOG: this.log, FAKE_HOST: t.name, FAKE_ROOT: root,
                },
            });
            const out: Buffer[] = [];
            const err: Buffer[] = [];
            p.stdout.on("data", (d: Buffer) => out.push(d));
            p.stderr.on("data", (d: Buffer) => err.push(d));
            p.on("error", reject);
            p.on("close", (code) => resolve({ code: code ?? 255, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
            p.stdin.on("error", () => undefined);
            if (typeof stdin === "function") stdin().pipe(p.stdin);
            else p.stdin.end(stdin ?? "");
        });
    }
}
