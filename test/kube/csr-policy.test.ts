import { strict as assert } from "node:assert";
import { webcrypto } from "node:crypto";
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { decideServingCsr, ManagedNode } from "../../kube/csr-policy";
import type { CertificateSigningRequest } from "../../kube/client";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const NODES: ManagedNode[] = [
    { name: "k8s-node01", ip: "172.16.60.244" },
    { name: "k8s-node02", ip: "172.16.60.245" },
];
const EC = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

let keys: webcrypto.CryptoKeyPair;

interface RequestShape {
    subject?: x509.JsonName;
    dns?: string[];
    ips?: string[];
    extraSans?: { type: "email" | "url"; value: string }[];
}

/** A real PKCS#10 request as a kubelet sends it (ECDSA P-256), base64 of the PEM like spec.request. */
async function pkcs10(node: string, shape: RequestShape = {}): Promise<string> {
    const sans = [
        ...(shape.dns ?? [node]).map((value) => ({ type: "dns" as const, value })),
        ...(shape.ips ?? [NODES.find((n) => n.name === node)?.ip ?? "10.9.9.9"]).map((value) => ({ type: "ip" as const, value })),
        ...(shape.extraSans ?? []),
    ];
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
        name: shape.subject ?? [{ O: ["system:nodes"] }, { CN: [`system:node:${node}`] }],
        keys: keys as unknown as x509.Pkcs10CertificateRequestCreateParams["keys"],
        signingAlgorithm: EC,
        extensions: sans.length ? [new x509.SubjectAlternativeNameExtension(sans)] : [],
    });
    return Buffer.from(csr.toString("pem")).toString("base64");
}

async function csrObject(node: string, over: { shape?: RequestShape; spec?: Partial<CertificateSigningRequest["spec"]> } = {}): Promise<CertificateSigningRequest> {
    return {
        apiVersion: "certificates.k8s.io/v1",
        kind: "CertificateSigningRequest",
        metadata: { name: "csr-x7k2p", resourceVersion: "100" },
        spec: {
            request: await pkcs10(node, over.shape),
            signerName: "kubernetes.io/kubelet-serving",
            usages: ["digital signature", "server auth"],
            username: `system:node:${node}`,
            groups: ["system:nodes", "system:authenticated"],
            ...over.spec,
        },
        status: {},
    };
}

function refusal(csr: CertificateSigningRequest): string {
    const d = decideServingCsr(csr, NODES);
    assert.equal(d.approve, false, "must be refused");
    return (d as { reason: string }).reason;
}

describe("kubelet serving CSR policy", () => {
    before(async () => {
        keys = await webcrypto.subtle.generateKey(EC, true, ["sign", "verify"]) as webcrypto.CryptoKeyPair;
    });

    it("approves a managed node's own serving request (with or without key encipherment)", async () => {
        assert.deepEqual(decideServingCsr(await csrObject("k8s-node01"), NODES), { approve: true, node: "k8s-node01" });
        const rsaStyle = await csrObject("k8s-node02", { spec: { usages: ["digital signature", "key encipherment", "server auth"] } });
        assert.deepEqual(decideServingCsr(rsaStyle, NODES), { approve: true, node: "k8s-node02" });
    });

    it("compares IPs by value, not spelling (IPv6)", async () => {
        const v6: ManagedNode[] = [{ name: "n6", ip: "fd00::a:1" }];
        const csr = await csrObject("n6", { shape: { ips: ["fd00:0:0:0:0:0:a:1"] } });
        assert.equal(decideServingCsr(csr, v6).approve, true);
    });

    it("refuses a request for one node made by another node", async () => {
        const csr = await csrObject("k8s-node01", { spec: { username: "system:node:k8s-node02" } });
        assert.match(refusal(csr), /subject CN \{system:node:k8s-node01\} is not the requester's own name system:node:k8s-node02/);
    });

    it("refuses a node this stack does not manage", async () => {
        assert.match(refusal(await csrObject("intruder")), /requester system:node:intruder is not a node this stack manages/);
    });

    it("refuses a requester outside system:nodes", async () => {
        const csr = await csrObject("k8s-node01", { spec: { groups: ["system:authenticated"] } });
        assert.match(refusal(csr), /not in group system:nodes/);
    });

    it("refuses an extra DNS SAN", async () => {
        const csr = await csrObject("k8s-node01", { shape: { dns: ["k8s-node01", "kubernetes.default"] } });
        assert.match(refusal(csr), /SAN DNS names .* \(unexpected kubernetes\.default\)/);
    });

    it("refuses an extra SAN of another type (email)", async () => {
        const csr = await csrObject("k8s-node01", { shape: { extraSans: [{ type: "email", value: "root@k8s-node01" }] } });
        assert.match(refusal(csr), /names other than DNS and IP: email:root@k8s-node01/);
    });

    it("refuses a request without the node's IP", async () => {
        const csr = await csrObject("k8s-node01", { shape: { ips: [] } });
        assert.match(refusal(csr), /SAN IP addresses \{\} must be exactly \{172\.16\.60\.244\} \(missing 172\.16\.60\.244\)/);
    });

    it("refuses a request for the wrong IP, and for an extra IP", async () => {
        const wrong = await csrObject("k8s-node01", { shape: { ips: ["172.16.60.245"] } });
        assert.match(refusal(wrong), /missing 172\.16\.60\.244; unexpected 172\.16\.60\.245/);
        const extra = await csrObject("k8s-node01", { shape: { ips: ["172.16.60.244", "10.96.0.1"] } });
        assert.match(refusal(extra), /\(unexpected 10\.96\.0\.1\)/);
    });

    it("refuses a request without the node's name as DNS SAN", async () => {
        const csr = await csrObject("k8s-node01", { shape: { dns: [] } });
        assert.match(refusal(csr), /SAN DNS names \{\} .*\(missing k8s-node01\)/);
    });

    it("refuses a wrong subject: CN, O, or extra attributes", async () => {
        const cn = await csrObject("k8s-node01", { shape: { subject: [{ O: ["system:nodes"] }, { CN: ["k8s-node01"] }] } });
        assert.match(refusal(cn), /subject CN \{k8s-node01\} is not the requester's own name system:node:k8s-node01/);
        const o = await csrObject("k8s-node01", { shape: { subject: [{ O: ["system:masters"] }, { CN: ["system:node:k8s-node01"] }] } });
        assert.match(refusal(o), /subject O \{system:masters\} must be exactly \{system:nodes\}/);
        const twoOrgs = await csrObject("k8s-node01", { shape: { subject: [{ O: ["system:nodes"] }, { O: ["system:masters"] }, { CN: ["system:node:k8s-node01"] }] } });
        assert.match(refusal(twoOrgs), /subject O \{system:nodes, system:masters\}/);
        const ou = await csrObject("k8s-node01", { shape: { subject: [{ O: ["system:nodes"] }, { OU: ["x"] }, { CN: ["system:node:k8s-node01"] }] } });
        assert.match(refusal(ou), /attributes other than CN and O: OU=x/);
    });

    it("refuses another signer", async () => {
        const csr = await csrObject("k8s-node01", { spec: { signerName: "kubernetes.io/kube-apiserver-client-kubelet" } });
        assert.match(refusal(csr), /signerName is "kubernetes\.io\/kube-apiserver-client-kubelet", not kubernetes\.io\/kubelet-serving/);
    });

    it("refuses client usages and incomplete usages", async () => {
        const client = await csrObject("k8s-node01", { spec: { usages: ["digital signature", "server auth", "client auth"] } });
        assert.match(refusal(client), /usages .* are not the kubelet serving set .*not allowed client auth/);
        const noServer = await csrObject("k8s-node01", { spec: { usages: ["digital signature", "key encipherment"] } });
        assert.match(refusal(noServer), /missing server auth/);
    });

    it("refuses a requester that is not a node", async () => {
        for (const username of ["kubernetes-admin", "system:serviceaccount:kube-system:default", "system:node:", "system:nodes"]) {
            const csr = await csrObject("k8s-node01", { spec: { username } });
            assert.match(refusal(csr), /requester ".*" is not a node \(expected system:node:<name>\)/, username);
        }
    });

    it("refuses a request that is not one PEM certificate request", async () => {
        const garbage = await csrObject("k8s-node01", { spec: { request: Buffer.from("hello").toString("base64") } });
        assert.match(refusal(garbage), /exactly one PEM CERTIFICATE REQUEST block \(found none\)/);
        const good = await csrObject("k8s-node01");
        const pem = Buffer.from(good.spec.request, "base64").toString();
        const two = await csrObject("k8s-node01", { spec: { request: Buffer.from(pem + pem).toString("base64") } });
        assert.match(refusal(two), /exactly one PEM CERTIFICATE REQUEST block/);
        const broken = await csrObject("k8s-node01", {
            spec: { request: Buffer.from(pem.replace(/\n([A-Za-z0-9+/]{10})/, "\nAAAAAAAAAA")).toString("base64") },
        });
        assert.equal(decideServingCsr(broken, NODES).approve, false);
    });
});
