// The rolling primitive end to end on fake hosts: the real PROBE/APPLY scripts under /bin/sh, the
// real planner and roll (host/provider.ts converge, refresh, teardown), a fake systemctl.
import { strict as assert } from "node:assert";
import { execSync } from "node:child_process";
import { chmodSync, readFileSync, statSync, writeFileSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { converge, refresh, runScript, teardown } from "../../host/provider";
import { hostManifest, Member, script, sha256, unit } from "../../host/group";
import { HostGroupInputs, HostGroupOutputs, UnitStep } from "../../host/types";
import { HostFile } from "../../render/types";
import { FakeHosts } from "./fake-hosts";

const OWNER = execSync("printf '%s:%s' \"$(id -un)\" \"$(id -gn)\"").toString();

describe("HostGroup on fake hosts (real agent scripts, real planner and roll)", function () {
    this.timeout(20000);
    let fake: FakeHosts;
    beforeEach(() => {
        fake = new FakeHosts();
    });

    /** One "service" per host: a config file the unit reads, a file nobody reads, a unit file, and a binary uploaded from here. */
    function member(host: string, opts: { config?: string; note?: string; withBinary?: boolean; health?: string } = {}): Member {
        const r = fake.root(host);
        const files: HostFile[] = [
            { path: `${r}/etc/svc/config.yaml`, content: opts.config ?? "flag: 1\n", mode: "0600", secret: true, owner: OWNER },
            { path: `${r}/etc/svc/notes.txt`, content: opts.note ?? "hello\n", mode: "0644", secret: false, owner: OWNER },
            { path: `${r}/etc/svc/svc.service`, content: "[Service]\nExecStart=/bin/true\n", mode: "0644", secret: false, owner: OWNER },
        ];
        const bin = join(fake.dir, "svc-binary");
        if (!existsSync(bin)) writeFileSync(bin, "#!/bin/sh\necho v1\n");
        const binaries = opts.withBinary ? [{ path: `${r}/bin/svc`, entry: { source: sha256(readFileSync(bin)), from: { local: bin } } }] : [];
        return hostManifest({ name: host, ip: "198.18.0.99", roles: ["worker"] }, {
            files, binaries,
            steps: [unit({
                name: "svc.service", reads: [`${r}/etc/svc/config.yaml`, `${r}/etc/svc/svc.service`, ...binaries.map((b) => b.path)],
                health: { what: "svc /healthz", check: opts.health ?? "true", timeoutSeconds: 2 },
            })],
        });
    }

    function group(members: Member[], roll: Partial<HostGroupInputs["roll"]> = {}): HostGroupInputs {
        return {
            group: "test", order: members.map((m) => m.name), roll: { batch: 1, ...roll },
            hosts: Object.fromEntries(members.map((m) => [m.name, m.manifest])),
            payload: Object.fromEntries(members.map((m) => [m.name, m.payload])),
        };
    }

    it("installs everything on first run; a second run with the same inputs writes nothing and restarts nothing", async () => {
        const g = group(["a", "b"].map((h) => member(h, { withBinary: true })));
        const first = await converge(fake, g);
        for (const h of ["a", "b"]) {
            assert.equal(readFileSync(`${fake.root(h)}/etc/svc/config.yaml`, "utf8"), "flag: 1\n");
            assert.equal(statSync(`${fake.root(h)}/etc/svc/config.yaml`).mode & 0o777, 0o600);
            assert.equal(readFileSync(`${fake.root(h)}/bin/svc`, "utf8"), "#!/bin/sh\necho v1\n");
            assert.equal(fake.unitState(h, "svc.service"), "active");
        }
        assert.ok(first.some((l) => l === "a: started svc.service"), first.join("\n"));
        fake.clearCalls();
        const second = await converge(fake, g, g);
        assert.deepEqual(second, []);
        assert.deepEqual(fake.calls(), []);
    });

    it("a changed file restarts only the unit that reads it; a file nothing reads restarts nothing", async () => {
        const before = group(["a"].map((h) => member(h)));
        await converge(fake, before);
        fake.clearCalls();
        const noteOnly = group(["a"].map((h) => member(h, { note: "changed\n" })));
        const done = await converge(fake, noteOnly, before);
        assert.ok(done.includes(`a: wrote ${fake.root("a")}/etc/svc/notes.txt`), done.join("\n"));
        assert.deepEqual(fake.calls(/restart|start|reload/), []);
        const configChanged = group(["a"].map((h) => member(h, { note: "changed\n", config: "flag: 2\n" })));
        await converge(fake, configChanged, noteOnly);
        assert.deepEqual(fake.calls(/restart|start|reload/), ["a restart svc.service"]);
    });

    it("rolls a restart one host at a time, in order, the lastIf host last", async () => {
        const hosts = ["a", "b", "c"];
        const before = group(hosts.map((h) => member(h)), { lastIf: "test -e \"$FAKE_ROOT/holds-vip\"" });
        await converge(fake, before);
        writeFileSync(join(fake.root("a"), "holds-vip"), "");
        fake.clearCalls();
        const after = group(hosts.map((h) => member(h, { config: "flag: 2\n" })), { lastIf: before.roll.lastIf });
        await converge(fake, after, before);
        assert.deepEqual(fake.calls(/restart/), ["b restart svc.service", "c restart svc.service", "a restart svc.service"]);
    });

    it("a batch size restarts that many hosts at a time", async () => {
        const hosts = ["a", "b", "c", "d"];
        const before = group(hosts.map((h) => member(h)), { batch: 2 });
        await converge(fake, before);
        // The gate of each host sleeps, so two hosts of one batch overlap and the next batch waits.
        const slow = "sleep 0.4; true";
        const after = group(hosts.map((h) => member(h, { config: "flag: 2\n", health: slow })), { batch: 2 });
        const t0 = Date.now();
        await converge(fake, after, before);
        const took = Date.now() - t0;
        assert.equal(fake.calls(/restart/).length, 4);
        assert.ok(took >= 800 && took < 1600, `two batches of two overlapping 0.4 s gates took ${took} ms`);
    });

    it("a failing host stops the roll there: later hosts keep their old files and keep running; the error names host, unit, state and log, never the script", async () => {
        const hosts = ["a", "b", "c"];
        const before = group(hosts.map((h) => member(h)));
        await converge(fake, before);
        fake.setUnit("b", "svc.service", "fail");
        fake.clearCalls();
        const after = group(hosts.map((h) => member(h, { config: "flag: 2\n" })));
        await assert.rejects(converge(fake, after, before), (e: Error) => {
            assert.match(e.message, /^b: systemctl restart svc\.service failed/);
            assert.match(e.message, /state: ActiveState=/);
            assert.match(e.message, /last log lines \(journalctl -u svc\.service\)/);
            assert.match(e.message, /bad flag --frobnicate/);
            assert.match(e.message, /roll stopped at b; c were not changed/);
            assert.doesNotMatch(e.message, /while IFS|base64|KUBEHA_STATE_DIR/);
            return true;
        });
        assert.equal(readFileSync(`${fake.root("a")}/etc/svc/config.yaml`, "utf8"), "flag: 2\n");
        assert.equal(readFileSync(`${fake.root("c")}/etc/svc/config.yaml`, "utf8"), "flag: 1\n", "c keeps its old config");
        assert.deepEqual(fake.calls(/restart/), ["a restart svc.service"]);
        assert.equal(fake.unitState("c", "svc.service"), "active");
        // Fixed: the next run finishes b and c; a is already done and is left alone.
        execSync(`rm -f ${fake.root("b")}/units/svc.service.fail`);
        fake.clearCalls();
        await converge(fake, after, before);
        assert.deepEqual(fake.calls(/restart/), ["b restart svc.service", "c restart svc.service"]);
    });

    it("a unit with a drain restarts between the drain's before and after on the other hosts; a failed gate leaves it drained, the next run puts it back", async () => {
        const withDrain = (m: Member, health?: string): Member => {
            const step = m.manifest.steps[0] as UnitStep;
            const mark = `"$FAKE_ROOT/drained-${m.name}"`;
            return { ...m, manifest: { ...m.manifest, steps: [{
                ...step, health: health ? { ...step.health!, check: health } : step.health,
                drain: { what: "the test proxy", on: [{ name: "lb", address: "198.18.0.98" }], before: `touch ${mark}; echo "drain ${m.name}" >>"$FAKE_LOG"`, after: `if [ -e ${mark} ]; then rm ${mark}; echo "undrain ${m.name}" >>"$FAKE_LOG"; fi` },
            }] } };
        };
        const before = group(["a", "b"].map((h) => withDrain(member(h))));
        await converge(fake, before);
        fake.clearCalls();
        const after = group(["a", "b"].map((h) => withDrain(member(h, { config: "flag: 2\n" }))));
        await converge(fake, after, before);
        assert.deepEqual(fake.calls(/drain|restart/), ["drain a", "a restart svc.service", "undrain a", "drain b", "b restart svc.service", "undrain b"]);

        // b's gate fails: b stays out of the proxy, and the error says so.
        fake.clearCalls();
        const broken = group(["a", "b"].map((h) => withDrain(member(h, { config: "flag: 3\n" }), h === "b" ? "false" : undefined)));
        await assert.rejects(converge(fake, broken, after), /roll stopped at b \(b stays out of the test proxy until it is healthy again\)/);
        assert.ok(existsSync(join(fake.root("lb"), "drained-b")), "b is still drained");
        // Healthy again, with the config as before the failed change (nothing to restart): put back.
        fake.clearCalls();
        const fixed = group(["a", "b"].map((h) => withDrain(member(h, { config: "flag: 3\n" }))));
        await converge(fake, fixed, broken);
        assert.ok(!existsSync(join(fake.root("lb"), "drained-b")), "b is back");
        assert.deepEqual(fake.calls(/undrain/), ["undrain b"]);
    });

    it("a health gate that never passes fails with what was checked and the unit's state and log lines", async () => {
        const g = group([member("a", { health: "echo 'connection refused' >&2; false" })]);
        await assert.rejects(converge(fake, g), (e: Error) => {
            assert.match(e.message, /^a: svc \/healthz: not healthy after 2s/);
            assert.match(e.message, /last check output:\n {2}connection refused/);
            assert.match(e.message, /bad flag --frobnicate/);
            return true;
        });
    });

    it("refresh shows drift (a file edited by hand, a stopped unit, a replaced binary) and the next converge heals exactly that", async () => {
        const g = group([member("a", { withBinary: true })]);
        await converge(fake, g);
        const out: HostGroupOutputs = { ...g, lastApplied: [] };
        const clean = await refresh(fake, out);
        assert.deepEqual(clean.hosts, g.hosts, "no drift right after converging");

        writeFileSync(`${fake.root("a")}/etc/svc/notes.txt`, "edited by hand\n");
        fake.setUnit("a", "svc.service", "inactive");
        writeFileSync(`${fake.root("a")}/bin/svc`, "#!/bin/sh\necho tampered\n");
        const found = await refresh(fake, out);
        const m = found.hosts.a;
        assert.notEqual(m.files[`${fake.root("a")}/etc/svc/notes.txt`].sha256, g.hosts.a.files[`${fake.root("a")}/etc/svc/notes.txt`].sha256);
        assert.equal(m.files[`${fake.root("a")}/etc/svc/config.yaml`].sha256, g.hosts.a.files[`${fake.root("a")}/etc/svc/config.yaml`].sha256);
        assert.match(m.binaries[`${fake.root("a")}/bin/svc`].source, /^changed on the host/);
        assert.equal(m.steps[0].kind === "unit" && m.steps[0].state, "inactive");

        fake.clearCalls();
        const healed = await converge(fake, g, found);
        assert.equal(readFileSync(`${fake.root("a")}/etc/svc/notes.txt`, "utf8"), "hello\n");
        assert.equal(readFileSync(`${fake.root("a")}/bin/svc`, "utf8"), "#!/bin/sh\necho v1\n");
        assert.equal(fake.unitState("a", "svc.service"), "active");
        // The binary it runs was replaced: one (re)start, not two.
        assert.deepEqual(fake.calls(/start|restart/), ["a start svc.service"], healed.join("\n"));
        assert.deepEqual((await refresh(fake, out)).hosts, g.hosts, "no drift after healing");
    });

    it("a corrupt upload is refused, removed, and uploaded again by the next run", async () => {
        const g = group([member("a", { withBinary: true })]);
        const sha = g.hosts.a.binaries[`${fake.root("a")}/bin/svc`].source;
        mkdirSync(join(fake.root("a"), "state/staging"), { recursive: true });
        writeFileSync(join(fake.root("a"), "state/staging", sha), "not the binary");
        await assert.rejects(converge(fake, g), /does not match sha256 .*; it was removed, so the next pulumi up uploads it again/);
        assert.ok(!existsSync(join(fake.root("a"), "state/staging", sha)));
        await converge(fake, g);
        assert.equal(readFileSync(`${fake.root("a")}/bin/svc`, "utf8"), "#!/bin/sh\necho v1\n");
    });

    it("a host that leaves runs beforeRemove on the controller, stops its units and removes its files; a file another group shares stays", async () => {
        const withRemove = (h: string): Member => {
            const m = member(h);
            return { ...m, manifest: { ...m.manifest, beforeRemove: `echo "drained ${h}"; touch "$FAKE_ROOT/drained-${h}"` } };
        };
        const before = { ...group(["a", "b"].map(withRemove)), controller: { name: "ctl", address: "198.18.0.1" } };
        await converge(fake, before);
        // Another group manages b's notes.txt too.
        const other = { ...group([member("b")]), group: "other" };
        await converge(fake, other);
        const after = { ...group([withRemove("a")]), controller: before.controller };
        const done = await converge(fake, after, before);
        assert.ok(done.includes("ctl: drained b"), done.join("\n"));
        assert.ok(existsSync(join(fake.root("ctl"), "drained-b")));
        assert.equal(fake.unitState("b", "svc.service"), "inactive");
        assert.ok(existsSync(`${fake.root("b")}/etc/svc/notes.txt`), "still managed by the other group");
        assert.equal(fake.unitState("a", "svc.service"), "active");
        // The other group leaves too: now the files go.
        await teardown(fake, other);
        assert.ok(!existsSync(`${fake.root("b")}/etc/svc/notes.txt`));
        assert.ok(!existsSync(`${fake.root("b")}/etc/svc`), "emptied directories go");
    });

    it("teardown removes a unit's data directories and their parent once it is empty, never a parent that holds more", async () => {
        const m = member("a");
        const r = fake.root("a");
        const step = { ...(m.manifest.steps[0] as UnitStep), removeOnDelete: [`${r}/var/lib/svc/data`, `${r}/var/lib/svc/wal`] };
        const g = group([{ ...m, manifest: { ...m.manifest, steps: [step] } }]);
        await converge(fake, g);
        for (const d of ["data", "wal"]) mkdirSync(`${r}/var/lib/svc/${d}/member`, { recursive: true });
        mkdirSync(`${r}/var/lib/other`, { recursive: true });
        await teardown(fake, g);
        assert.ok(!existsSync(`${r}/var/lib/svc`), "the emptied parent goes");
        assert.ok(existsSync(`${r}/var/lib/other`), "what else is in /var/lib stays");
    });

    it("a script step runs once per digest", async () => {
        const r = fake.root("a");
        const mk = (text: string) => hostManifest({ name: "a", ip: "198.18.0.99", roles: ["worker"] }, {
            files: [{ path: `${r}/etc/prep.conf`, content: text, mode: "0644", secret: false, owner: OWNER }],
            steps: [script({ name: "prepare", reads: [`${r}/etc/prep.conf`], script: `echo ran >>"$FAKE_ROOT/prepare.log"` })],
        });
        const g1 = group([mk("x=1\n")]);
        await converge(fake, g1);
        await converge(fake, g1, g1);
        assert.equal(readFileSync(join(r, "prepare.log"), "utf8"), "ran\n");
        const g2 = group([mk("x=2\n")]);
        await converge(fake, g2, g1);
        assert.equal(readFileSync(join(r, "prepare.log"), "utf8"), "ran\nran\n");
    });

    it("a HostScript failure names the host and what failed, with the script's own error output only", async () => {
        const i = { kind: "script" as const, what: "bootstrap RBAC", host: { name: "m1", address: "198.18.0.11" }, script: "echo 'error: the server is unavailable' >&2; exit 3", digest: "x" };
        await assert.rejects(runScript(fake, i, i.script), /^Error: m1: bootstrap RBAC failed \(exit 3\):\nerror: the server is unavailable$/);
        chmodSync(fake.dir, 0o755);
    });

    it("a HostScript gate waits through the agent's gate: healthy once the check passes, else what was checked and its last output", async () => {
        const host = { name: "m1", address: "198.18.0.11" };
        const flag = join(fake.root("m1"), "ready");
        const ok = { kind: "script" as const, what: "API endpoint", host, script: "", digest: "x", gate: { what: "API endpoint /readyz", check: `test -e ${flag}`, timeoutSeconds: 5 } };
        setTimeout(() => writeFileSync(flag, ""), 1200);
        assert.deepEqual(await runScript(fake, ok, ok.script), ["m1: API endpoint /readyz: healthy"]);
        const never = { ...ok, gate: { what: "API endpoint /readyz", check: "echo 'connection refused' >&2; false", timeoutSeconds: 1 } };
        await assert.rejects(runScript(fake, never, never.script), /^Error: m1: API endpoint \/readyz: not healthy after 1s\nlast check output:\n {2}connection refused/);
    });
});
