// kube/client.ts and the serving-certificate approver against a local HTTPS server that speaks the
// few API paths they use, checks client certificates like the API server and keeps
// resourceVersions so conflicts are real. Certificates come from pki/x509.ts (real X.509).
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { webcrypto } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { TLSSocket } from "node:tls";
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import * as pulumi from "@pulumi/pulumi";
import { createSelfSignedCert, createCertRequest, generateKey, signCertRequest } from "../../pki/x509";
import {
    APPROVAL_REASON, CertificateSigningRequest, createKubeClient, CSR_API, isKubeApiError, KubeClient, KubeClientConfig, KubeNode, waitUntil,
} from "../../kube/client";
import { approveServingCsrs, servingCertApprovalProvider, ServingCertApprovalOutputs } from "../../components/serving-cert-approver";
import type { ServingCertApproval } from "../../components/serving-cert-approver";
import { promiseOf, Recorded, runProgram, settled, startMocks } from "../mocks";
import type { ManagedNode } from "../../kube/csr-policy";

interface Pki {
    caCertPem: string;
    serverCertPem: string;
    serverKeyPem: string;
    adminCertPem: string;
    adminKeyPem: string;
    rogueCertPem: string;
    rogueKeyPem: string;
    otherCaCertPem: string;
}

async function makePki(): Promise<Pki> {
    const caKey = generateKey("ECDSA");
    const caCertPem = await createSelfSignedCert({ privateKeyPem: caKey.privateKeyPem, subject: { commonName: "test-ca" }, isCaCert: true, allowedUses: ["cert_signing", "digital_signature"], validityPeriodHours: 1 });
    const leaf = async (ca: { certPem: string; keyPem: string }, commonName: string, organization: string | undefined, uses: ("server_auth" | "client_auth")[], ips?: string[]) => {
        const key = generateKey("ECDSA");
        const certRequestPem = await createCertRequest({ privateKeyPem: key.privateKeyPem, subject: { commonName, organization }, ipAddresses: ips });
        const certPem = await signCertRequest({ certRequestPem, caCertPem: ca.certPem, caPrivateKeyPem: ca.keyPem, allowedUses: ["digital_signature", ...uses], validityPeriodHours: 1 });
        return { certPem, keyPem: key.privateKeyPem };
    };
    const ca = { certPem: caCertPem, keyPem: caKey.privateKeyPem };
    const otherKey = generateKey("ECDSA");
    const otherCaCertPem = await createSelfSignedCert({ privateKeyPem: otherKey.privateKeyPem, subject: { commonName: "other-ca" }, isCaCert: true, allowedUses: ["cert_signing", "digital_signature"], validityPeriodHours: 1 });
    const server = await leaf(ca, "kube-apiserver", undefined, ["server_auth"], ["127.0.0.1"]);
    const admin = await leaf(ca, "kubernetes-admin", "system:masters", ["client_auth"]);
    const rogue = await leaf({ certPem: otherCaCertPem, keyPem: otherKey.privateKeyPem }, "kubernetes-admin", "system:masters", ["client_auth"]);
    return {
        caCertPem, serverCertPem: server.certPem, serverKeyPem: server.keyPem, adminCertPem: admin.certPem, adminKeyPem: admin.keyPem,
        rogueCertPem: rogue.certPem, rogueKeyPem: rogue.keyPem, otherCaCertPem,
    };
}

interface Seen {
    method: string;
    path: string;
    query: Record<string, string>;
    body?: any;
    contentType?: string;
    clientCn?: string;
}

/** The API server's side: CSRs and nodes in memory, client-certificate authentication, optimistic concurrency. */
class FakeApiServer {
    readonly csrs = new Map<string, CertificateSigningRequest>();
    nodes: KubeNode[] = [];
    readonly seen: Seen[] = [];
    pageSize = 100;
    /** Runs before a PUT .../approval is applied; may change the stored object to provoke a 409. */
    beforeApproval?: (name: string) => void;
    /** Answer every request with this status (and a Status body) instead. */
    failWith?: { code: number; reason: string; message: string };
    /** Accept connections but never answer. */
    hang = false;
    private rv = 1000;
    private server!: https.Server;
    url = "";

    constructor(private readonly pki: Pki) {}

    async start(): Promise<void> {
        this.server = https.createServer({
            key: this.pki.serverKeyPem, cert: this.pki.serverCertPem, ca: [this.pki.caCertPem], requestCert: true, rejectUnauthorized: false,
        }, (req, res) => this.handle(req, res));
        await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
        this.url = `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    }

    async stop(): Promise<void> {
        this.server.closeAllConnections();
        await new Promise((r) => this.server.close(r));
    }

    add(csr: CertificateSigningRequest): void {
        this.csrs.set(csr.metadata.name, { ...csr, metadata: { ...csr.metadata, resourceVersion: String(++this.rv) } });
    }

    /** Someone else touched the object (a label, a condition): its resourceVersion moves on. */
    touch(name: string, change: (c: CertificateSigningRequest) => void = () => undefined): void {
        const c = this.csrs.get(name)!;
        change(c);
        c.metadata.resourceVersion = String(++this.rv);
    }

    private send(res: import("node:http").ServerResponse, code: number, body: unknown): void {
        res.writeHead(code, { "Content-Type": "application/json" });
        res.end(JSON.stringify(body));
    }

    private status(res: import("node:http").ServerResponse, code: number, reason: string, message: string): void {
        this.send(res, code, { kind: "Status", apiVersion: "v1", status: "Failure", reason, message, code });
    }

    private handle(req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse): void {
        const chunks: Buffer[] = [];
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => {
            const socket = req.socket as TLSSocket;
            const url = new URL(req.url ?? "/", "https://x");
            const text = Buffer.concat(chunks).toString();
            const seen: Seen = {
                method: req.method ?? "", path: url.pathname, query: Object.fromEntries(url.searchParams), contentType: req.headers["content-type"],
                body: text ? JSON.parse(text) : undefined,
                clientCn: socket.authorized ? socket.getPeerCertificate().subject?.CN as string | undefined : undefined,
            };
            this.seen.push(seen);
            if (this.hang) return;
            if (!socket.authorized) return this.status(res, 401, "Unauthorized", "Unauthorized");
            if (this.failWith) return this.status(res, this.failWith.code, this.failWith.reason, this.failWith.message);
            this.route(seen, res);
        });
    }

    private route(r: Seen, res: import("node:http").ServerResponse): void {
        if (r.method === "GET" && r.path === "/api/v1/nodes") return this.send(res, 200, { kind: "NodeList", apiVersion: "v1", metadata: {}, items: this.nodes });
        if (r.method === "GET" && r.path === CSR_API) {
            const signer = /^spec\.signerName=(.+)$/.exec(r.query.fieldSelector ?? "")?.[1];
            const all = [...this.csrs.values()].filter((c) => !signer || c.spec.signerName === signer);
            const start = Number(r.query.continue ?? 0);
            const size = Math.min(this.pageSize, Number(r.query.limit ?? Infinity));
            const next = start + size < all.length ? String(start + size) : undefined;
            return this.send(res, 200, {
                kind: "CertificateSigningRequestList", apiVersion: "certificates.k8s.io/v1",
                metadata: { resourceVersion: String(this.rv), ...(next ? { continue: next } : {}) },
                // Like the API server, list items carry no apiVersion/kind.
                items: all.slice(start, start + size).map((c) => {
                    const item: Partial<CertificateSigningRequest> = structuredClone(c);
                    delete item.apiVersion;
                    delete item.kind;
                    return item;
                }),
            });
        }
        const m = /^\/apis\/certificates\.k8s\.io\/v1\/certificatesigningrequests\/([^/]+)(\/approval)?$/.exec(r.path);
        const stored = m && this.csrs.get(decodeURIComponent(m[1]));
        if (m && !stored) return this.status(res, 404, "NotFound", `certificatesigningrequests.certificates.k8s.io "${m[1]}" not found`);
        if (m && stored && r.method === "GET" && !m[2]) return this.send(res, 200, stored);
        if (m && stored && r.method === "PUT" && m[2]) {
            this.beforeApproval?.(stored.metadata.name);
            if (r.body?.metadata?.resourceVersion !== stored.metadata.resourceVersion) {
                return this.status(res, 409, "Conflict", `Operation cannot be fulfilled on certificatesigningrequests.certificates.k8s.io "${stored.metadata.name}": the object has been modified; please apply your changes to the latest version and try again`);
            }
            // The approval subresource takes only status.conditions from the body.
            stored.status = { ...stored.status, conditions: r.body.status?.conditions ?? [] };
            stored.metadata.resourceVersion = String(++this.rv);
            return this.send(res, 200, stored);
        }
        this.status(res, 404, "NotFound", "the server could not find the requested resource");
    }
}

const ecParams = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
let csrKeys: webcrypto.CryptoKeyPair;

/** A kubelet-shaped serving CSR object; `sans` overrides the node's own names. */
async function servingCsr(name: string, node: string, ip: string, opts: { signer?: string; dns?: string[]; ips?: string[]; conditions?: any[] } = {}): Promise<CertificateSigningRequest> {
    const req = await x509.Pkcs10CertificateRequestGenerator.create({
        name: [{ O: ["system:nodes"] }, { CN: [`system:node:${node}`] }],
        keys: csrKeys as unknown as x509.Pkcs10CertificateRequestCreateParams["keys"],
        signingAlgorithm: ecParams,
        extensions: [new x509.SubjectAlternativeNameExtension([
            ...(opts.dns ?? [node]).map((value) => ({ type: "dns" as const, value })),
            ...(opts.ips ?? [ip]).map((value) => ({ type: "ip" as const, value })),
        ])],
    });
    return {
        apiVersion: "certificates.k8s.io/v1", kind: "CertificateSigningRequest",
        metadata: { name, creationTimestamp: new Date().toISOString() },
        spec: {
            request: Buffer.from(req.toString("pem")).toString("base64"), signerName: opts.signer ?? "kubernetes.io/kubelet-serving",
            usages: ["digital signature", "server auth"], username: `system:node:${node}`, groups: ["system:nodes", "system:authenticated"],
        },
        status: { conditions: opts.conditions ?? [] },
    };
}

const approvedBy = (c?: CertificateSigningRequest) => (c?.status?.conditions ?? []).filter((x) => x.type === "Approved" && x.status === "True");

describe("kube/client and the serving-cert approver, against a local HTTPS API server", function () {
    this.timeout(20_000);
    let pki: Pki;
    let api: FakeApiServer;
    let config: KubeClientConfig;
    let client: KubeClient;

    before(async () => {
        x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
        csrKeys = await webcrypto.subtle.generateKey(ecParams, true, ["sign", "verify"]) as webcrypto.CryptoKeyPair;
        pki = await makePki();
    });

    beforeEach(async () => {
        api = new FakeApiServer(pki);
        await api.start();
        config = { server: api.url, caCertPem: pki.caCertPem, clientCertPem: pki.adminCertPem, clientKeyPem: pki.adminKeyPem, requestTimeoutMs: 2000 };
        client = createKubeClient(config);
    });

    afterEach(async () => api.stop());

    describe("client", () => {
        it("authenticates with the client certificate and lists nodes", async () => {
            api.nodes = [{ metadata: { name: "n1" } }];
            assert.deepEqual((await client.listNodes()).map((n) => n.metadata.name), ["n1"]);
            assert.equal(api.seen.length, 1);
            assert.equal(api.seen[0].clientCn, "kubernetes-admin");
            assert.equal(api.seen[0].path, "/api/v1/nodes");
        });

        it("gets 401 with a client certificate from another CA", async () => {
            const rogue = createKubeClient({ ...config, clientCertPem: pki.rogueCertPem, clientKeyPem: pki.rogueKeyPem });
            await assert.rejects(rogue.listNodes(), (e: unknown) => isKubeApiError(e) && e.statusCode === 401 && e.reason === "Unauthorized");
        });

        it("refuses an API server whose certificate the given CA did not sign", async () => {
            const wrongCa = createKubeClient({ ...config, caCertPem: pki.otherCaCertPem });
            await assert.rejects(wrongCa.listNodes(), (e: Error) => !isKubeApiError(e) && /certificate/i.test(e.message));
            assert.equal(api.seen.length, 0);
        });

        it("refuses a plain-http server URL", () => {
            assert.throws(() => createKubeClient({ ...config, server: api.url.replace("https", "http") }), /must be https/);
        });

        it("lists CSRs by signer with a field selector, following `continue`", async () => {
            api.pageSize = 2;
            for (const n of ["a", "b", "c"]) api.add(await servingCsr(`csr-${n}`, "n1", "10.0.0.1"));
            api.add(await servingCsr("csr-client", "n1", "10.0.0.1", { signer: "kubernetes.io/kube-apiserver-client-kubelet" }));
            const list = await client.listCertificateSigningRequests({ signerName: "kubernetes.io/kubelet-serving" });
            assert.deepEqual(list.map((c) => c.metadata.name), ["csr-a", "csr-b", "csr-c"]);
            assert.deepEqual(api.seen.map((s) => [s.method, s.path, s.query.fieldSelector, s.query.continue]), [
                ["GET", CSR_API, "spec.signerName=kubernetes.io/kubelet-serving", undefined],
                ["GET", CSR_API, "spec.signerName=kubernetes.io/kubelet-serving", "2"],
            ]);
            assert.equal((await client.listCertificateSigningRequests()).length, 4);
        });

        it("approves with a PUT of the object plus the Approved condition to /approval", async () => {
            api.add(await servingCsr("csr-a", "n1", "10.0.0.1"));
            const [before] = await client.listCertificateSigningRequests();
            assert.equal(before.kind, undefined);
            const result = await client.approveCertificateSigningRequest(before, "looks right");
            assert.equal(api.seen.length, 2);
            const put = api.seen[1];
            assert.equal(put.body.apiVersion, "certificates.k8s.io/v1");
            assert.equal(put.body.kind, "CertificateSigningRequest");
            assert.equal(put.method, "PUT");
            assert.equal(put.path, `${CSR_API}/csr-a/approval`);
            assert.equal(put.contentType, "application/json");
            assert.equal(put.body.metadata.resourceVersion, before.metadata.resourceVersion);
            assert.deepEqual(put.body.spec, before.spec);
            assert.equal(put.body.status.conditions.length, 1);
            const { lastUpdateTime, ...condition } = put.body.status.conditions[0];
            assert.deepEqual(condition, { type: "Approved", status: "True", reason: APPROVAL_REASON, message: "looks right" });
            assert.ok(!Number.isNaN(Date.parse(lastUpdateTime)));
            assert.equal(APPROVAL_REASON, "KubehaServingCertApproved");
            assert.equal(approvedBy(result).length, 1);
            assert.equal(approvedBy(api.csrs.get("csr-a")).length, 1);
        });

        it("on 409 re-reads the CSR and approves the current version", async () => {
            api.add(await servingCsr("csr-a", "n1", "10.0.0.1"));
            const stale = structuredClone(api.csrs.get("csr-a")!);
            let conflicts = 0;
            api.beforeApproval = (name) => {
                if (conflicts++ === 0) api.touch(name, (c) => { c.metadata.labels = { touched: "yes" }; });
            };
            const result = await client.approveCertificateSigningRequest(stale, "m");
            assert.deepEqual(api.seen.map((s) => `${s.method} ${s.path}`), [
                `PUT ${CSR_API}/csr-a/approval`, `GET ${CSR_API}/csr-a`, `PUT ${CSR_API}/csr-a/approval`,
            ]);
            assert.notEqual(api.seen[2].body.metadata.resourceVersion, stale.metadata.resourceVersion);
            assert.deepEqual(api.seen[2].body.metadata.labels, { touched: "yes" });
            assert.equal(approvedBy(result).length, 1);
        });

        it("on 409 finds the CSR approved by someone else and stops; finds it denied and refuses", async () => {
            api.add(await servingCsr("csr-a", "n1", "10.0.0.1"));
            api.add(await servingCsr("csr-b", "n1", "10.0.0.1"));
            const [a, b] = ["csr-a", "csr-b"].map((n) => structuredClone(api.csrs.get(n)!));
            api.beforeApproval = (name) => api.touch(name, (c) => {
                c.status = { conditions: [{ type: name === "csr-a" ? "Approved" : "Denied", status: "True", reason: "Other" }] };
            });
            const ra = await client.approveCertificateSigningRequest(a, "m");
            assert.deepEqual(approvedBy(ra).map((c) => c.reason), ["Other"]);
            await assert.rejects(client.approveCertificateSigningRequest(b, "m"), /csr-b is denied; not approving/);
            assert.deepEqual(api.csrs.get("csr-b")!.status!.conditions!.map((c) => c.type), ["Denied"]);
            assert.equal(api.seen.filter((s) => s.method === "PUT").length, 2);
        });

        it("gives up after repeated conflicts", async () => {
            api.add(await servingCsr("csr-a", "n1", "10.0.0.1"));
            api.beforeApproval = (name) => api.touch(name);
            await assert.rejects(client.approveCertificateSigningRequest(structuredClone(api.csrs.get("csr-a")!), "m"),
                (e: unknown) => isKubeApiError(e) && e.statusCode === 409);
            assert.equal(api.seen.filter((s) => s.method === "PUT").length, 5);
        });

        it("does not PUT an already approved CSR", async () => {
            api.add(await servingCsr("csr-a", "n1", "10.0.0.1", { conditions: [{ type: "Approved", status: "True" }] }));
            await client.approveCertificateSigningRequest(structuredClone(api.csrs.get("csr-a")!), "m");
            assert.equal(api.seen.length, 0);
        });

        it("reports API errors with status code, reason and message", async () => {
            api.failWith = { code: 403, reason: "Forbidden", message: "nodes is forbidden: User \"x\" cannot list resource" };
            await assert.rejects(client.listNodes(), (e: unknown) =>
                isKubeApiError(e) && e.statusCode === 403 && e.reason === "Forbidden" && /GET \/api\/v1\/nodes\?limit=500: HTTP 403 Forbidden: nodes is forbidden/.test(e.message));
        });

        it("times a request out when the server does not answer", async () => {
            api.hang = true;
            const slow = createKubeClient({ ...config, requestTimeoutMs: 150 });
            const t0 = Date.now();
            await assert.rejects(slow.listNodes(), (e: Error & { code?: string }) => e.code === "KUBE_TIMEOUT");
            assert.ok(Date.now() - t0 < 1500);
        });
    });

    describe("waitUntil", () => {
        it("retries transient failures and 'not yet' until done", async () => {
            let calls = 0;
            const v = await waitUntil("x", async () => {
                calls++;
                if (calls === 1) throw Object.assign(new Error("refused"), { code: "ECONNREFUSED" });
                if (calls === 2) return { done: false, detail: "later" };
                return { done: true, value: 42 };
            }, { timeoutMs: 2000, intervalMs: 10 });
            assert.equal(v, 42);
            assert.equal(calls, 3);
        });

        it("times out naming what it waited for and the last detail", async () => {
            await assert.rejects(waitUntil("the thing", async () => ({ done: false, detail: "still missing n2" }), { timeoutMs: 100, intervalMs: 20 }),
                /timed out after 0 s waiting for the thing: still missing n2/);
        });

        it("stops at once on an error that will not go away", async () => {
            let calls = 0;
            api.failWith = { code: 403, reason: "Forbidden", message: "no" };
            await assert.rejects(waitUntil("nodes", async () => { calls++; await client.listNodes(); return { done: true, value: 1 }; }, { timeoutMs: 5000, intervalMs: 10 }), /HTTP 403/);
            assert.equal(calls, 1);
        });
    });

    describe("approveServingCsrs", () => {
        const nodes: ManagedNode[] = [{ name: "n1", ip: "10.0.0.1" }, { name: "n2", ip: "10.0.0.2" }];

        it("approves exactly the managed nodes' valid serving CSRs and leaves the rest pending, reported", async () => {
            api.add(await servingCsr("csr-n1", "n1", "10.0.0.1"));
            api.add(await servingCsr("csr-n2", "n2", "10.0.0.2"));
            api.add(await servingCsr("csr-n2-extra-ip", "n2", "10.0.0.2", { ips: ["10.0.0.2", "10.96.0.1"] }));
            api.add(await servingCsr("csr-foreign", "stranger", "10.0.0.9"));
            api.add(await servingCsr("csr-n1-client", "n1", "10.0.0.1", { signer: "kubernetes.io/kube-apiserver-client-kubelet" }));
            api.add(await servingCsr("csr-n1-old", "n1", "10.0.0.1", { conditions: [{ type: "Approved", status: "True" }] }));
            const report = await approveServingCsrs(client, { nodes, timeoutMs: 2000, intervalMs: 20 });
            assert.deepEqual(report.approvedNow, ["csr-n1", "csr-n2"]);
            assert.deepEqual(report.approved, { n1: ["csr-n1", "csr-n1-old"], n2: ["csr-n2"] });
            assert.deepEqual(report.refused.map((r) => [r.name, r.requester]), [["csr-foreign", "system:node:stranger"], ["csr-n2-extra-ip", "system:node:n2"]]);
            assert.match(report.refused[0].reason, /not a node this stack manages/);
            assert.match(report.refused[1].reason, /unexpected 10\.96\.0\.1/);
            for (const name of ["csr-n2-extra-ip", "csr-foreign", "csr-n1-client"]) {
                assert.deepEqual(api.csrs.get(name)!.status!.conditions, [], `${name} must stay untouched`);
            }
            const puts = api.seen.filter((s) => s.method === "PUT").map((s) => s.path);
            assert.deepEqual(puts, [`${CSR_API}/csr-n1/approval`, `${CSR_API}/csr-n2/approval`]);
            assert.match(api.csrs.get("csr-n1")!.status!.conditions![0].message!, /managed node n1/);
        });

        it("waits for a node whose CSR arrives later", async () => {
            api.add(await servingCsr("csr-n1", "n1", "10.0.0.1"));
            const late = await servingCsr("csr-n2", "n2", "10.0.0.2");
            setTimeout(() => api.add(late), 200);
            const t0 = Date.now();
            const report = await approveServingCsrs(client, { nodes, timeoutMs: 5000, intervalMs: 25 });
            assert.ok(Date.now() - t0 >= 150);
            assert.deepEqual(report.approvedNow, ["csr-n1", "csr-n2"]);
        });

        it("waits only for awaitNodes, still approving valid CSRs of the others", async () => {
            api.add(await servingCsr("csr-n2", "n2", "10.0.0.2"));
            const report = await approveServingCsrs(client, { nodes, awaitNodes: ["n2"], timeoutMs: 1000, intervalMs: 20 });
            assert.deepEqual(report.approved, { n1: [], n2: ["csr-n2"] });
        });

        it("times out saying, per node, what is missing", async () => {
            api.nodes = [{ metadata: { name: "n1" } }];
            api.add(await servingCsr("csr-n1-bad", "n1", "10.0.0.1", { dns: ["n1", "evil.example"] }));
            await assert.rejects(approveServingCsrs(client, { nodes: [...nodes, { name: "n3", ip: "10.0.0.3" }], timeoutMs: 300, intervalMs: 50 }), (e: Error) => {
                assert.match(e.message, /timed out after 0 s waiting for approved kubelet serving certificates for n1, n2, n3/);
                assert.match(e.message, /n1: serving CSR csr-n1-bad refused \(SAN DNS names .*unexpected evil\.example\)/);
                assert.match(e.message, /n2: no Node object yet/);
                assert.match(e.message, /n3: no Node object yet/);
                return true;
            });
            assert.deepEqual(api.csrs.get("csr-n1-bad")!.status!.conditions, []);
        });
    });

    describe("the dynamic provider, as Pulumi serializes it (run by plain node, no ts-node)", () => {
        let providerText: string;

        before(async function () {
            this.timeout(60_000);
            const sf = await pulumi.runtime.serializeFunction(() => servingCertApprovalProvider, { allowSecrets: true });
            providerText = sf.text;
            assert.equal(sf.containsSecrets, false);
        });

        /** Loads the serialized provider like @pulumi/pulumi's dynamic-provider host and calls one method. */
        function runSerialized(method: "check" | "diff" | "create" | "update", args: unknown[]): Promise<any> {
            const dir = mkdtempSync(join(tmpdir(), "kubeha-provider-"));
            writeFileSync(join(dir, "provider.js"), providerText);
            writeFileSync(join(dir, "args.json"), JSON.stringify(args));
            const script = `
                const fs = require("fs"), path = require("path");
                const requireFromString = require("require-from-string");
                const provider = requireFromString(fs.readFileSync(path.join(process.argv[1], "provider.js"), "utf8")).handler();
                const args = JSON.parse(fs.readFileSync(path.join(process.argv[1], "args.json"), "utf8"));
                provider[process.argv[2]](...args).then((r) => process.stdout.write(JSON.stringify({ ok: r })),
                    (e) => process.stdout.write(JSON.stringify({ error: String(e && e.message || e) })));`;
            return new Promise((resolveRun, reject) => {
                const child = spawn(process.execPath, ["-e", script, dir, method], {
                    cwd: resolve(__dirname, "../.."), env: { ...process.env, NODE_OPTIONS: "" }, stdio: ["ignore", "pipe", "pipe"],
                });
                let out = "";
                let err = "";
                child.stdout.on("data", (d) => (out += d));
                child.stderr.on("data", (d) => (err += d));
                child.on("exit", (code) => {
                    try {
                        const r = JSON.parse(out);
                        if ("error" in r) reject(new Error(r.error)); else resolveRun(r.ok);
                    } catch {
                        reject(new Error(`provider process exited ${code}: ${err}`));
                    }
                });
            });
        }

        const inputs = () => ({
            apiServerUrl: api.url, caCertPem: pki.caCertPem, adminCertPem: pki.adminCertPem, adminKeyPem: pki.adminKeyPem,
            nodes: [{ name: "n2", ip: "10.0.0.2" }, { name: "n1", ip: "10.0.0.1" }], timeoutSeconds: 5,
        });

        it("carries no local requires and no key material", () => {
            assert.doesNotMatch(providerText, /require\(["']\.{1,2}\//);
            assert.doesNotMatch(providerText, /PRIVATE KEY/);
            assert.match(providerText, /require\("@peculiar\/x509"\)/);
        });

        it("create approves through the real client and records only non-secret state", async () => {
            api.add(await servingCsr("csr-n1", "n1", "10.0.0.1"));
            api.add(await servingCsr("csr-n2", "n2", "10.0.0.2"));
            api.add(await servingCsr("csr-x", "stranger", "10.0.0.9"));
            const r = await runSerialized("create", [inputs()]);
            assert.match(r.id, /^serving-cert-approval-/);
            const outs = r.outs as ServingCertApprovalOutputs;
            assert.deepEqual(outs.approvedCsrs, { n1: ["csr-n1"], n2: ["csr-n2"] });
            assert.deepEqual(outs.refusedCsrs.map((c) => c.name), ["csr-x"]);
            assert.deepEqual(outs.nodes.map((n) => n.name), ["n1", "n2"]);
            assert.doesNotMatch(JSON.stringify(outs), /PRIVATE KEY|BEGIN CERTIFICATE/);
            assert.equal(api.seen[0].clientCn, "kubernetes-admin");
        });

        it("update waits only for added, re-addressed or re-generated nodes and keeps the others' record", async () => {
            const olds: ServingCertApprovalOutputs = { ...await runSerialized("create", [{ ...inputs(), nodes: [] }]).then((r) => r.outs) };
            olds.nodes = [{ name: "n1", ip: "10.0.0.1", kubeletGeneration: "a" }, { name: "n2", ip: "10.0.0.2" }, { name: "n4", ip: "10.0.0.4" }];
            olds.approvedCsrs = { n1: ["csr-old-n1"], n2: ["csr-old-n2"], n4: ["csr-old-n4"] };
            const news = { ...inputs(), nodes: [{ name: "n1", ip: "10.0.0.1", kubeletGeneration: "b" }, { name: "n2", ip: "10.0.0.2" }, { name: "n3", ip: "10.0.0.3" }] };
            // n1 (new generation) and n3 (new) must be waited for: without their CSRs the update fails.
            api.add(await servingCsr("csr-n3", "n3", "10.0.0.3"));
            await assert.rejects(runSerialized("update", ["id", olds, { ...news, timeoutSeconds: 0.3 }]), /for n1, n3: n1: no Node object yet \(kubelet not registered\)$/);
            api.add(await servingCsr("csr-n1-new", "n1", "10.0.0.1"));
            const r = await runSerialized("update", ["id", olds, news]);
            assert.deepEqual(r.outs.approvedCsrs, { n1: ["csr-n1-new"], n2: ["csr-old-n2"], n3: ["csr-n3"] });
            assert.deepEqual(r.outs.nodes.map((n: { name: string }) => n.name), ["n1", "n2", "n3"]);
        });

        it("diff: changes only when the node set or the CA changes; unknowns count as changes", async () => {
            const outs = { nodes: [{ name: "n1", ip: "10.0.0.1" }, { name: "n2", ip: "10.0.0.2" }], caCertSha256: "", approvedCsrs: {}, refusedCsrs: [] };
            const created = await runSerialized("create", [{ ...inputs(), nodes: [] }]);
            outs.caCertSha256 = created.outs.caCertSha256;
            const diff = (news: object) => runSerialized("diff", ["id", outs, { ...inputs(), ...news }]);
            assert.equal((await diff({})).changes, false, "same nodes in another order, new admin cert or URL: no change");
            assert.equal((await diff({ apiServerUrl: "https://10.9.9.9:6443", adminCertPem: "x" })).changes, false);
            assert.equal((await diff({ nodes: [{ name: "n1", ip: "10.0.0.1" }] })).changes, true);
            assert.equal((await diff({ nodes: [{ name: "n1", ip: "10.0.0.1" }, { name: "n2", ip: "10.0.0.22" }] })).changes, true);
            assert.equal((await diff({ caCertPem: pki.otherCaCertPem })).changes, true);
            assert.equal((await diff({ nodes: [{ name: "n1", ip: "10.0.0.1", kubeletGeneration: "2" }, { name: "n2", ip: "10.0.0.2" }] })).changes, true);
            const unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
            assert.equal((await diff({ nodes: unknown })).changes, true);
            assert.equal((await diff({ nodes: [{ name: "n1", ip: "10.0.0.1" }, { name: "n2", ip: unknown }] })).changes, true);
            assert.equal((await diff({ caCertPem: unknown })).changes, true);
        });

        it("check: names each bad input", async () => {
            const r = await runSerialized("check", [{}, {
                ...inputs(), apiServerUrl: "http://x", timeoutSeconds: 0,
                nodes: [{ name: "n1", ip: "10.0.0.1" }, { name: "n1", ip: "10.0.0.300" }, { name: "", ip: "04da6b54-80e4-46f7-96ec-b56ff0331ba9" }],
            }]);
            assert.deepEqual(r.failures.map((f: { property: string }) => f.property).sort(),
                ["apiServerUrl", "nodes[1].ip", "nodes[1].name", "nodes[2].name", "timeoutSeconds"]);
            assert.deepEqual((await runSerialized("check", [{}, inputs()])).failures, []);
        });

        it("create fails with the per-node diagnosis when a node never gets a valid CSR", async () => {
            api.add(await servingCsr("csr-n1", "n1", "10.0.0.1"));
            await assert.rejects(runSerialized("create", [{ ...inputs(), timeoutSeconds: 1 }]), /n2: no Node object yet/);
            assert.equal(approvedBy(api.csrs.get("csr-n1")).length, 1);
        });
    });

    describe("ServingCertApproval resource (mocks)", () => {
        it("registers one dynamic resource with the key as a secret input and an additional secret output", async () => {
            const recorded: Recorded[] = await startMocks();
            const { ServingCertApproval } = await import("../../components/serving-cert-approver");
            let opts: pulumi.CustomResourceOptions | undefined;
            const r: ServingCertApproval = await runProgram(() => {
                pulumi.runtime.registerStackTransformation((a) => {
                    if (a.name === "serving") opts = a.opts;
                    return undefined;
                });
                return new ServingCertApproval("serving", {
                    apiServerUrl: "https://172.16.60.250:8443", caCertPem: pki.caCertPem, adminCertPem: pki.adminCertPem,
                    adminKeyPem: pki.adminKeyPem, nodes: [{ name: "n1", ip: "10.0.0.1" }],
                });
            });
            await settled(recorded);
            const rec = recorded.find((x) => x.name === "serving")!;
            assert.equal(rec.type, "pulumi-nodejs:dynamic/kubeha:ServingCertApproval");
            assert.deepEqual(rec.secretInputs, ["adminKeyPem"]);
            assert.equal(rec.inputs.adminKeyPem, pki.adminKeyPem);
            assert.doesNotMatch(String(rec.inputs.__provider), /PRIVATE KEY/);
            assert.deepEqual(opts?.additionalSecretOutputs, ["adminKeyPem"]);
            assert.deepEqual(await promiseOf(r.nodes), [{ name: "n1", ip: "10.0.0.1" }]);
        });
    });
});
