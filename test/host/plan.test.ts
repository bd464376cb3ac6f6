// The planner on its own: what a first install and a change on a running host ask the agent to do,
// in which order.
import { strict as assert } from "node:assert";
import { planHost } from "../../host/plan";
import { hostManifest, script, unit } from "../../host/group";
import { Observed } from "../../host/agent";

const EMPTY: Observed = { files: {}, binaries: {}, units: {}, scripts: {}, staged: [], owners: {}, checks: {} };
const host = { name: "n1", ip: "198.18.0.21", roles: ["worker" as const] };
const gate = (what: string) => ({ what, check: "true", timeoutSeconds: 5 });
const files = ["a", "b", "c"].map((n) => ({ path: `/etc/${n}.conf`, content: n, mode: "0644", secret: false }));
const m = hostManifest(host, {
    files,
    steps: [
        unit({ name: "a.service", reads: ["/etc/a.conf"], health: gate("a") }),
        unit({ name: "b.service", reads: ["/etc/b.conf"], health: gate("b") }),
        script({ name: "import", reads: ["/etc/c.conf"], script: "echo import" }),
        unit({ name: "c.service", reads: ["/etc/c.conf"], health: gate("c") }),
    ],
});
const ops = (p: ReturnType<typeof planHost>) => p.requests.filter((r) => !["own", "write", "enable", "daemon-reload"].includes(r.op))
    .map((r) => `${r.op} ${"unit" in r && r.unit ? r.unit : "name" in r ? r.name : "record" in r ? r.record : "gate" in r ? r.gate.what : ""}`);

describe("planner", () => {
    it("a first install starts units back to back and checks and records them before the next script and at the end", () => {
        const p = planHost("nodes", m.manifest, m.payload, EMPTY);
        assert.equal(p.fresh, true);
        assert.deepEqual(ops(p), [
            "start a.service", "start b.service", "gate a.service", "record nodes/a.service", "gate b.service", "record nodes/b.service",
            "run import", "record nodes/import",
            "start c.service", "gate c.service", "record nodes/c.service",
        ]);
    });

    it("a change on a running host checks each restarted unit's gate before going on, and records it only then", () => {
        const applied: Observed = {
            ...EMPTY,
            files: Object.fromEntries(files.map((f) => [f.path, { sha256: m.manifest.files[f.path].sha256, mode: "0644", owner: "root:root" }])),
            units: Object.fromEntries(m.manifest.steps.filter((s) => s.kind === "unit").map((s) => [s.name, { active: "active", enabled: "enabled", applied: s.digest }])),
            scripts: { import: { applied: m.manifest.steps[2].digest } },
            owners: Object.fromEntries(files.map((f) => [f.path, ["nodes"]])),
        };
        const changed = hostManifest(host, { files: files.map((f) => (f.path === "/etc/a.conf" || f.path === "/etc/b.conf" ? { ...f, content: "new" } : f)), steps: [] });
        const next = { ...m.manifest, files: changed.manifest.files };
        const p = planHost("nodes", next, changed.payload, applied, m.manifest);
        assert.equal(p.fresh, false);
        assert.deepEqual(ops(p), ["restart a.service", "gate a.service", "restart b.service", "gate b.service"]);
    });
});
