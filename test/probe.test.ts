// test/e2e/probe.ts against a local HTTPS API server that checks client certificates like the
// API server (certificates from pki/x509.ts). The server runs in a worker thread so that it keeps
// answering while this thread is blocked in spawnSync, as the e2e's is during `pulumi up`.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { createCertRequest, createSelfSignedCert, generateKey, signCertRequest } from "../pki/x509";
import { ProbeResult, ProbeTarget, readKubeconfig, readyNodesOf, startProbe, startProbeInProcess } from "./e2e/probe";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The fake API server, plain JS for the worker: configmaps (POST, GET, merge PATCH), nodes, controls. */
const SERVER_JS = String.raw`
const { parentPort, workerData } = require("node:worker_threads");
const https = require("node:https");
const st = { cms: new Map(), nodes: [], paused: false, held: [], delayMs: 0, failNodes: false, failPost: false,
    connections: 0, requests: {}, clientCns: new Set() };
const send = (res, code, body) => { res.writeHead(code, { "Content-Type": "application/json" }); res.end(JSON.stringify(body)); };
const status = (res, code, reason, message) => send(res, code, { kind: "Status", status: "Failure", reason, message, code });
function route(req, res, text) {
    const url = new URL(req.url, "https://x");
    const m = /^\/api\/v1\/namespaces\/default\/configmaps(?:\/([^/]+))?$/.exec(url.pathname);
    if (req.method === "GET" && url.pathname === "/api/v1/nodes") {
        if (st.failNodes) return status(res, 503, "ServiceUnavailable", "etcd leader changed");
        return send(res, 200, { kind: "NodeList", items: st.nodes });
    }
    if (!m) return status(res, 404, "NotFound", "no route " + url.pathname);
    if (req.method === "POST" && !m[1]) {
        if (st.failPost) return status(res, 403, "Forbidden", "configmaps is forbidden");
        const cm = JSON.parse(text);
        if (st.cms.has(cm.metadata.name)) return status(res, 409, "AlreadyExists", "configmaps already exists");
        st.cms.set(cm.metadata.name, cm);
        return send(res, 201, cm);
    }
    const cm = st.cms.get(decodeURIComponent(m[1] || ""));
    if (!cm) return status(res, 404, "NotFound", "configmaps not found");
    if (req.method === "GET") return send(res, 200, cm);
    if (req.method === "PATCH") {
        if (req.headers["content-type"] !== "application/merge-patch+json") return status(res, 415, "UnsupportedMediaType", "bad patch type");
        cm.data = { ...cm.data, ...JSON.parse(text).data };
        return send(res, 200, cm);
    }
    status(res, 405, "MethodNotAllowed", req.method);
}
const server = https.createServer({ key: workerData.key, cert: workerData.cert, ca: [workerData.ca], requestCert: true, rejectUnauthorized: false }, (req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
        const key = req.method + " " + new URL(req.url, "https://x").pathname;
        st.requests[key] = (st.requests[key] || 0) + 1;
        if (!req.socket.authorized) return status(res, 401, "Unauthorized", "Unauthorized");
        st.clientCns.add(req.socket.getPeerCertificate().subject.CN);
        const answer = () => route(req, res, Buffer.concat(chunks).toString());
        if (st.paused) st.held.push(answer);
        else if (st.delayMs) setTimeout(answer, st.delayMs);
        else answer();
    });
});
server.on("secureConnection", () => st.connections++);
const ops = {
    listen: () => new Promise((r) => server.listen(0, "127.0.0.1", () => r(server.address().port))),
    pause: () => { st.paused = true; },
    resume: () => { st.paused = false; st.held.splice(0).forEach((a) => a()); },
    delay: (ms) => { st.delayMs = ms; },
    nodes: (n) => { st.nodes = n; },
    failNodes: (b) => { st.failNodes = b; },
    failPost: (b) => { st.failPost = b; },
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
    stats: () => ({ connections: st.connections, requests: st.requests, clientCns: [...st.clientCns], cms: Object.fromEntries(st.cms) }),
};
parentPort.on("message", async ({ id, op, arg }) => {
    try { parentPort.postMessage({ id, value: await ops[op](arg) }); } catch (e) { parentPort.postMessage({ id, error: String(e) }); }
});
`;

interface Stats {
    connections: number;
    requests: Record<string, number>;
    clientCns: string[];
    cms: Record<string, { data: Record<string, string> }>;
}

class FakeApi {
    private worker!: Worker;
    private next = 0;
    private waiting = new Map<number, { res: (v: any) => void; rej: (e: Error) => void }>();
    port = 0;

    async start(pki: { ca: string; cert: string; key: string }): Promise<void> {
        this.worker = new Worker(SERVER_JS, { eval: true, workerData: pki });
        this.worker.on("message", ({ id, value, error }) => {
            const w = this.waiting.get(id)!;
            this.waiting.delete(id);
            if (error) w.rej(new Error(error)); else w.res(value);
        });
        this.port = await this.call("listen");
    }

    call<T = void>(op: string, arg?: unknown): Promise<T> {
        const id = this.next++;
        return new Promise<T>((res, rej) => {
            this.waiting.set(id, { res, rej });
            this.worker.postMessage({ id, op, arg });
        });
    }

    stats = () => this.call<Stats>("stats");
    stop = () => this.worker.terminate();
}

const node = (name: string, ready?: "True" | "False") => ({
    metadata: { name }, status: { conditions: ready ? [{ type: "MemoryPressure", status: "False" }, { type: "Ready", status: ready }] : [] },
});
const b64 = (s: string) => Buffer.from(s).toString("base64");
const count = (r: ProbeResult, kind: string, pattern?: RegExp) => r.failures.filter((f) => f.kind === kind && (!pattern || pattern.test(f.error))).length;

describe("e2e API probe (test/e2e/probe.ts)", function () {
    this.timeout(15_000);
    let pki: { ca: string; cert: string; key: string; adminCert: string; adminKey: string };
    let api: FakeApi;
    let target: ProbeTarget;
    let dir: string;
    let kubeconfig: string;

    before(async () => {
        const caKey = generateKey("ECDSA");
        const ca = await createSelfSignedCert({ privateKeyPem: caKey.privateKeyPem, subject: { commonName: "test-ca" }, isCaCert: true, allowedUses: ["cert_signing", "digital_signature"], validityPeriodHours: 1 });
        const leaf = async (commonName: string, organization: string | undefined, use: "server_auth" | "client_auth") => {
            const key = generateKey("ECDSA");
            const certRequestPem = await createCertRequest({ privateKeyPem: key.privateKeyPem, subject: { commonName, organization }, ipAddresses: use === "server_auth" ? ["127.0.0.1"] : undefined });
            const cert = await signCertRequest({ certRequestPem, caCertPem: ca, caPrivateKeyPem: caKey.privateKeyPem, allowedUses: ["digital_signature", use], validityPeriodHours: 1 });
            return { cert, key: key.privateKeyPem };
        };
        const server = await leaf("kube-apiserver", undefined, "server_auth");
        const admin = await leaf("kubernetes-admin", "system:masters", "client_auth");
        pki = { ca, cert: server.cert, key: server.key, adminCert: admin.cert, adminKey: admin.key };
        dir = mkdtempSync(join(tmpdir(), "kubeha-probe-"));
    });

    beforeEach(async () => {
        api = new FakeApi();
        await api.start(pki);
        await api.call("nodes", [node("m1", "True"), node("w1", "True")]);
        target = { server: `https://127.0.0.1:${api.port}`, caCertPem: pki.ca, clientCertPem: pki.adminCert, clientKeyPem: pki.adminKey };
        kubeconfig = join(dir, `admin-${api.port}.conf`);
        writeFileSync(kubeconfig, [
            "apiVersion: v1", "kind: Config", "current-context: admin@lab",
            "clusters:", `- name: lab`, `  cluster:`, `    server: ${target.server}`, `    certificate-authority-data: ${b64(pki.ca)}`,
            "users:", "- name: admin", "  user:", `    client-certificate-data: ${b64(pki.adminCert)}`, `    client-key-data: ${b64(pki.adminKey)}`,
            "contexts:", "- name: admin@lab", "  context: {cluster: lab, user: admin}", "",
        ].join("\n"));
    });

    afterEach(() => api.stop());

    it("keeps probing in its own process while this one is blocked in spawnSync: all OK, each request on a new connection", async () => {
        const probe = startProbe({ kubeconfig, label: "all-ok", intervalMs: 250, timeoutMs: 2000, nodesIntervalMs: 500 });
        await probe.ready;
        spawnSync("sleep", ["1.5"]); // what `pulumi up` through spawnSync does to the e2e's event loop
        const r = await probe.stop();
        const s = await api.stats();
        assert.equal(r.label, "all-ok");
        assert.deepEqual(r.failures, []);
        assert.equal(r.reads.failed + r.writes.failed + r.readyNodes.failed, 0);
        assert.ok(r.reads.ok >= 5 && r.writes.ok >= 5, `ticks ran while the parent was blocked: ${JSON.stringify(r)}`);
        assert.ok(r.durationSeconds >= 1.5, String(r.durationSeconds));
        assert.deepEqual({ min: r.readyNodes.min, max: r.readyNodes.max, notReady: r.readyNodes.notReadySeen }, { min: 2, max: 2, notReady: [] });
        assert.ok(r.readyNodes.samples >= 3, String(r.readyNodes.samples));
        // One request per tick, nothing retried, never a reused connection.
        assert.equal(s.requests["GET /api/v1/namespaces/default/configmaps/kubeha-probe"], r.reads.ok);
        assert.equal(s.requests["PATCH /api/v1/namespaces/default/configmaps/kubeha-probe"], r.writes.ok);
        assert.equal(s.requests["GET /api/v1/nodes"], r.readyNodes.samples);
        const total = Object.values(s.requests).reduce((a, b) => a + b, 0);
        assert.equal(s.connections, total);
        assert.equal(s.cms["kubeha-probe"].data.counter, String(r.writes.ok));
        assert.equal(s.cms["kubeha-probe"].data.label, "all-ok");
        assert.deepEqual(s.clientCns, ["kubernetes-admin"]);
    });

    it("counts every tick the server does not answer while paused, with the error, and retries nothing", async () => {
        const probe = startProbeInProcess(target, { label: "pause", intervalMs: 100, timeoutMs: 300, nodesIntervalMs: 10_000 });
        await probe.ready;
        await sleep(250);
        await api.call("pause");
        const pausedAt = Date.now();
        await sleep(1000);
        await api.call("resume");
        const resumedAt = Date.now();
        await sleep(300);
        const r = await probe.stop();
        const s = await api.stats();
        for (const [kind, counts] of [["read", r.reads], ["write", r.writes]] as const) {
            assert.ok(counts.failed >= 2, `${kind}: every request of the 1 s pause fails at its 300 ms deadline: ${JSON.stringify(r)}`);
            assert.equal(count(r, kind), counts.failed);
            assert.ok(count(r, kind, /^no answer within 300 ms$/) >= 2, `${kind}: timeouts: ${JSON.stringify(r.failures)}`);
            assert.ok(counts.skipped >= 4, `${kind}: ticks while one was in flight are skipped, not issued`);
            assert.ok(counts.failed + counts.skipped >= 8, `${kind}: the pause covers about ten ticks`);
            assert.ok(counts.ok >= 4, `${kind}: OK before and after the pause`);
        }
        // The failures are the pause's (a loaded machine may add a slow answer or two elsewhere).
        const outside = r.failures.filter((f) => Date.parse(f.at) < pausedAt - 350 || Date.parse(f.at) > resumedAt + 50);
        assert.ok(outside.length <= 2, `failures outside the pause ${new Date(pausedAt).toISOString()}..${new Date(resumedAt).toISOString()}: ${JSON.stringify(outside)}`);
        // Every request the probe issued reached the server once: no retry hid a failure.
        const issued = (kind: "read" | "write") => (kind === "read" ? r.reads : r.writes).ok + count(r, kind);
        assert.equal(s.requests["GET /api/v1/namespaces/default/configmaps/kubeha-probe"], issued("read"));
        assert.equal(s.requests["PATCH /api/v1/namespaces/default/configmaps/kubeha-probe"], issued("write"));
    });

    it("does not drift when answers are slower than the interval: one tick per interval, slow ones counted", async () => {
        await api.call("delay", 250);
        const probe = startProbeInProcess(target, { label: "slow", intervalMs: 100, timeoutMs: 1000, nodesIntervalMs: 10_000 });
        await probe.ready;
        const t0 = Date.now();
        await sleep(800);
        const expected = (Date.now() - t0) / 100 + 1; // tick 0 at t0
        const r = await probe.stop();
        // Ticks this process ran late (a loaded machine) are counted apart, not as API failures.
        const ticks = r.reads.ok + r.reads.failed + r.reads.skipped + r.ticksLate;
        assert.ok(Math.abs(ticks - expected) <= 2, `ticks ${ticks}, expected about ${expected}`);
        assert.ok(r.reads.ok >= 2 && r.reads.ok <= 5, `a 250 ms answer takes three ticks: ${r.reads.ok} OK`);
        assert.equal(r.reads.failed, 0, "a slow answer within the deadline is no failure");
        assert.ok(r.reads.skipped >= 4, `the ticks while a 250 ms answer is awaited are skipped: ${r.reads.skipped}`);
    });

    it("counts connection errors once the server is closed", async () => {
        const probe = startProbeInProcess(target, { label: "closed", intervalMs: 100, timeoutMs: 500, nodesIntervalMs: 10_000 });
        await probe.ready;
        await sleep(300);
        await api.call("close");
        const closedAt = Date.now();
        await sleep(600);
        const r = await probe.stop();
        assert.ok(r.reads.ok >= 2 && r.writes.ok >= 2, JSON.stringify(r));
        for (const kind of ["read", "write"]) {
            assert.ok(count(r, kind, /ECONNREFUSED/) >= 4, `${kind}: ${JSON.stringify(r.failures)}`);
        }
        assert.ok(r.failures.every((f) => Date.parse(f.at) >= closedAt - 100), JSON.stringify(r.failures));
    });

    it("counts Ready nodes: min and max over the samples, a failed list counted apart (not as 0 Ready)", async () => {
        await api.call("nodes", [node("m1", "True"), node("w1", "True"), node("w2", "True")]);
        const probe = startProbeInProcess(target, { label: "nodes", intervalMs: 100, timeoutMs: 500, nodesIntervalMs: 100 });
        await probe.ready;
        await sleep(300);
        await api.call("nodes", [node("m1", "True"), node("w1", "False"), node("w2")]);
        await sleep(400);
        await api.call("failNodes", true);
        await sleep(350);
        await api.call("failNodes", false);
        await api.call("nodes", [node("m1", "True"), node("w1", "True"), node("w2", "True")]);
        await sleep(300);
        const r = await probe.stop();
        assert.equal(r.readyNodes.min, 1);
        assert.equal(r.readyNodes.max, 3);
        assert.deepEqual(r.readyNodes.notReadySeen, ["w1", "w2"]);
        assert.ok(r.readyNodes.samples >= 6, JSON.stringify(r.readyNodes));
        assert.ok(r.readyNodes.failed >= 1, JSON.stringify(r.readyNodes));
        assert.equal(count(r, "nodes", /^HTTP 503 ServiceUnavailable: etcd leader changed$/), r.readyNodes.failed);
    });

    it("reports a ConfigMap it cannot create as a setup error, measuring nothing", async () => {
        await api.call("failPost", true);
        const probe = startProbeInProcess(target, { label: "setup", setupTimeoutMs: 600 });
        await assert.rejects(probe.ready, /creating ConfigMap default\/kubeha-probe: HTTP 403 Forbidden: configmaps is forbidden/);
        const r = await probe.stop();
        assert.match(r.setupError ?? "", /HTTP 403 Forbidden/);
        assert.equal(r.reads.ok + r.reads.failed + r.writes.ok + r.writes.failed, 0);
    });

    it("reads the kubeconfig's current context, inline or from files, and refuses one without a client certificate", () => {
        assert.deepEqual(readKubeconfig(kubeconfig), target);
        writeFileSync(join(dir, "ca.crt"), pki.ca);
        writeFileSync(join(dir, "admin.crt"), pki.adminCert);
        writeFileSync(join(dir, "admin.key"), pki.adminKey);
        const files = join(dir, "files.conf");
        writeFileSync(files, `apiVersion: v1
current-context: b
clusters: [{name: x, cluster: {server: "https://198.18.0.10:8443", certificate-authority-data: "${b64("wrong")}"}}, {name: y, cluster: {server: "https://10.0.0.1:8443", certificate-authority: ca.crt}}]
users: [{name: u, user: {client-certificate: admin.crt, client-key: ${join(dir, "admin.key")}}}]
contexts: [{name: a, context: {cluster: x, user: u}}, {name: b, context: {cluster: y, user: u}}]
`);
        assert.deepEqual(readKubeconfig(files), { server: "https://10.0.0.1:8443", caCertPem: pki.ca, clientCertPem: pki.adminCert, clientKeyPem: pki.adminKey });
        const token = join(dir, "token.conf");
        writeFileSync(token, `clusters: [{name: x, cluster: {server: "https://h:1", certificate-authority: ca.crt}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: a, context: {cluster: x, user: u}}]
current-context: a
`);
        assert.throws(() => readKubeconfig(token), /client-certificate\(-data\) missing/);
        assert.throws(() => startProbe({ kubeconfig: token, label: "x" }), /client-certificate\(-data\) missing/);
    });

    it("readyNodesOf counts only Ready=True", () => {
        assert.deepEqual(readyNodesOf({ items: [node("a", "True"), node("b", "False"), node("c"), { metadata: { name: "d" } }] }), { ready: 1, notReady: ["b", "c", "d"] });
        assert.throws(() => readyNodesOf({ kind: "Status" }), /without items/);
    });
});
