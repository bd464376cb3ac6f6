// ServingCertApproval: approves the kubelet serving-certificate CSRs (serverTLSBootstrap) of the
// nodes this stack manages, and only those: kube-controller-manager never approves
// `kubernetes.io/kubelet-serving`, and blanket approval would let any node claim any name or IP.
// kube/csr-policy.ts decides each CSR; anything it refuses is left pending (never denied) and
// reported in `refusedCsrs`.
//
// A Pulumi dynamic resource: its provider runs in a separate process from Pulumi's serialization
// of `servingCertApprovalProvider` and everything it reaches (this file's functions, kube/*), so
// those functions `require` modules where they use them and capture no secrets; the admin key
// reaches the provider only as an input.
import * as pulumi from "@pulumi/pulumi";
import type * as Crypto from "node:crypto";
import type * as Net from "node:net";
import { createKubeClient, csrState, KubeClient, waitUntil } from "../kube/client";
import { decideServingCsr, KUBELET_SERVING_SIGNER, ManagedNode, NODE_USER_PREFIX } from "../kube/csr-policy";

export const DEFAULT_APPROVAL_TIMEOUT_SECONDS = 300;

export interface RefusedCsr {
    /** CSR object name. */
    name: string;
    /** spec.username. */
    requester: string;
    reason: string;
}

export interface ServingCertApprovalReport {
    /** Per managed node: its approved serving CSRs that satisfy the policy (approved by this run or before). */
    approved: Record<string, string[]>;
    /** The CSRs this run approved. */
    approvedNow: string[];
    /** Pending kubelet-serving CSRs the policy refused; left untouched. */
    refused: RefusedCsr[];
}

export interface ApproveServingCsrsOptions {
    nodes: readonly ManagedNode[];
    /** Names of nodes that must end with an approved serving CSR; default: all of `nodes`. */
    awaitNodes?: readonly string[];
    timeoutMs: number;
    /** Pause between polls; default 2 s. */
    intervalMs?: number;
}

function approvalMessage(node: string): string {
    return `kubeha: requester, subject and SANs are exactly those of managed node ${node}`;
}

/** One line per node still waiting, saying what is missing. */
async function describeWaiting(client: KubeClient, waiting: string[], refused: RefusedCsr[]): Promise<string> {
    let registered: Set<string> | undefined;
    try {
        registered = new Set((await client.listNodes()).map((n) => n.metadata.name));
    } catch {
        registered = undefined;
    }
    return waiting.map((node) => {
        const mine = refused.filter((r) => r.requester === `${NODE_USER_PREFIX}${node}`);
        if (mine.length) return `${node}: serving CSR ${mine.map((r) => `${r.name} refused (${r.reason})`).join("; ")}`;
        if (registered && !registered.has(node)) return `${node}: no Node object yet (kubelet not registered)`;
        return `${node}: no kubelet-serving CSR yet`;
    }).join("; ");
}

/**
 * Polls the kubelet-serving CSRs, approves each pending one the policy allows, and returns once
 * every node of `awaitNodes` has an approved one. Pending CSRs the policy refuses stay pending.
 * Times out with an error naming, per node, what is missing (unregistered, no CSR, refused + why).
 */
export async function approveServingCsrs(client: KubeClient, opts: ApproveServingCsrsOptions): Promise<ServingCertApprovalReport> {
    const nodes = [...opts.nodes];
    const awaitNodes = [...(opts.awaitNodes ?? nodes.map((n) => n.name))];
    const approvedNow = new Set<string>();
    return waitUntil(`approved kubelet serving certificates for ${awaitNodes.join(", ") || "no node"}`, async () => {
        const csrs = (await client.listCertificateSigningRequests({ signerName: KUBELET_SERVING_SIGNER }))
            .filter((c) => c.spec?.signerName === KUBELET_SERVING_SIGNER)
            .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
        const approved: Record<string, string[]> = Object.fromEntries(nodes.map((n) => [n.name, [] as string[]]));
        const refused: RefusedCsr[] = [];
        for (const csr of csrs) {
            const decision = decideServingCsr(csr, nodes);
            let state = csrState(csr);
            if (state === "pending") {
                if (!decision.approve) {
                    refused.push({ name: csr.metadata.name, requester: csr.spec.username ?? "", reason: decision.reason });
                    continue;
                }
                const result = await client.approveCertificateSigningRequest(csr, approvalMessage(decision.node)).catch((e: Error) => {
                    // Denied or failed by someone else between our read and our write: leave it.
                    if (/is (denied|failed); not approving/.test(e.message)) return undefined;
                    throw e;
                });
                if (!result) continue;
                state = csrState(result);
                if (state === "approved") approvedNow.add(csr.metadata.name);
            }
            if (state === "approved" && decision.approve) approved[decision.node].push(csr.metadata.name);
        }
        const waiting = awaitNodes.filter((n) => !approved[n]?.length);
        if (!waiting.length) return { done: true as const, value: { approved, approvedNow: [...approvedNow].sort(), refused } };
        return { done: false as const, detail: await describeWaiting(client, waiting, refused) };
    }, { timeoutMs: opts.timeoutMs, intervalMs: opts.intervalMs });
}

// ---- the dynamic provider ----

/** A managed node as the resource takes it. */
export interface ApprovalNode extends ManagedNode {
    /**
     * Opaque; change it when the node's kubelet gets a new identity (its PKI directory is new, e.g.
     * the host was re-provisioned under the same name and IP) so the resource waits for that node's
     * new serving CSR. Must not change on a mere kubelet restart: a kubelet with a valid serving
     * certificate asks for none, and the wait would time out.
     */
    kubeletGeneration?: string;
}

/** Inputs as the provider receives them (resolved, plaintext). */
export interface ServingCertApprovalInputs {
    apiServerUrl: string;
    caCertPem: string;
    adminCertPem: string;
    adminKeyPem: string;
    nodes: ApprovalNode[];
    timeoutSeconds?: number;
}

/** What the provider records in state: no credentials, only what diff and the caller need. */
export interface ServingCertApprovalOutputs {
    nodes: ApprovalNode[];
    caCertSha256: string;
    approvedCsrs: Record<string, string[]>;
    refusedCsrs: RefusedCsr[];
}

/** A value not known yet (preview): Pulumi's unknown sentinel. */
function isUnknown(v: unknown): boolean {
    const { unknownValue } = require("@pulumi/pulumi/runtime/rpc") as { unknownValue: string };
    return v === unknownValue;
}

function nodeKey(n: ApprovalNode | undefined): string {
    return JSON.stringify([n?.name, n?.ip, n?.kubeletGeneration ?? ""]);
}

function nodesKey(nodes: readonly ApprovalNode[] | undefined): string {
    return JSON.stringify((Array.isArray(nodes) ? nodes : []).map(nodeKey).sort());
}

function caFingerprint(pem: string): string {
    const crypto = require("node:crypto") as typeof Crypto;
    return crypto.createHash("sha256").update(pem.trim()).digest("hex");
}

function validateInputs(news: ServingCertApprovalInputs): pulumi.dynamic.CheckFailure[] {
    const net = require("node:net") as typeof Net;
    const failures: pulumi.dynamic.CheckFailure[] = [];
    if (!isUnknown(news.apiServerUrl) && !/^https:\/\/[^/]+/.test(String(news.apiServerUrl))) {
        failures.push({ property: "apiServerUrl", reason: `must be an https:// URL, got ${JSON.stringify(news.apiServerUrl)}` });
    }
    for (const p of ["caCertPem", "adminCertPem", "adminKeyPem"] as const) {
        if (!isUnknown(news[p]) && !String(news[p] ?? "").includes("-----BEGIN ")) failures.push({ property: p, reason: "must be PEM" });
    }
    if (news.timeoutSeconds !== undefined && !isUnknown(news.timeoutSeconds)
        && !(typeof news.timeoutSeconds === "number" && news.timeoutSeconds > 0)) {
        failures.push({ property: "timeoutSeconds", reason: `must be a positive number of seconds, got ${JSON.stringify(news.timeoutSeconds)}` });
    }
    if (!isUnknown(news.nodes)) {
        if (!Array.isArray(news.nodes)) {
            failures.push({ property: "nodes", reason: "must be a list of {name, ip}" });
        } else {
            const seen = new Set<string>();
            news.nodes.forEach((n, i) => {
                if (isUnknown(n)) return;
                if (!isUnknown(n?.name)) {
                    if (typeof n?.name !== "string" || !n.name) failures.push({ property: `nodes[${i}].name`, reason: "must be a non-empty node name" });
                    else if (seen.has(n.name)) failures.push({ property: `nodes[${i}].name`, reason: `node ${n.name} is listed twice` });
                    else seen.add(n.name);
                }
                if (!isUnknown(n?.ip) && !net.isIP(String(n?.ip ?? ""))) failures.push({ property: `nodes[${i}].ip`, reason: `${JSON.stringify(n?.ip)} is not an IP address` });
                if (n?.kubeletGeneration !== undefined && typeof n.kubeletGeneration !== "string") {
                    failures.push({ property: `nodes[${i}].kubeletGeneration`, reason: "must be a string" });
                }
            });
        }
    }
    return failures;
}

/** Create (olds undefined) waits for every node; update waits for nodes added, re-addressed or of a new kubelet generation, or all of them under a new CA. */
async function runApproval(news: ServingCertApprovalInputs, olds?: ServingCertApprovalOutputs): Promise<ServingCertApprovalOutputs> {
    const nodes = [...news.nodes].sort((a, b) => a.name.localeCompare(b.name));
    const caCertSha256 = caFingerprint(news.caCertPem);
    const sameCluster = !!olds && olds.caCertSha256 === caCertSha256;
    const unchanged = (n: ApprovalNode) => sameCluster && (olds?.nodes ?? []).some((o) => nodeKey(o) === nodeKey(n));
    const client = createKubeClient({
        server: news.apiServerUrl, caCertPem: news.caCertPem, clientCertPem: news.adminCertPem, clientKeyPem: news.adminKeyPem,
    });
    const report = await approveServingCsrs(client, {
        nodes,
        awaitNodes: nodes.filter((n) => !unchanged(n)).map((n) => n.name),
        timeoutMs: (news.timeoutSeconds ?? DEFAULT_APPROVAL_TIMEOUT_SECONDS) * 1000,
    });
    const approvedCsrs = Object.fromEntries(nodes.map((n) => [n.name,
        [...new Set([...(unchanged(n) ? olds?.approvedCsrs?.[n.name] ?? [] : []), ...(report.approved[n.name] ?? [])])].sort()]));
    return { nodes, caCertSha256, approvedCsrs, refusedCsrs: report.refused };
}

/** The provider object Pulumi serializes; exported for tests that run its serialized form. */
export const servingCertApprovalProvider: pulumi.dynamic.ResourceProvider<ServingCertApprovalInputs, ServingCertApprovalOutputs> = {
    async check(_olds, news) {
        return { inputs: news, failures: validateInputs(news) };
    },
    // Only the node set and the cluster (its CA) matter: a new admin certificate or API URL needs no
    // new approvals. Values unknown at preview never equal the recorded ones, so they show as changes.
    async diff(_id, olds, news) {
        const changes = !Array.isArray(news.nodes) || nodesKey(olds.nodes) !== nodesKey(news.nodes)
            || olds.caCertSha256 !== caFingerprint(String(news.caCertPem));
        return { changes, replaces: [], deleteBeforeReplace: false };
    },
    async create(inputs) {
        const crypto = require("node:crypto") as typeof Crypto;
        return { id: `serving-cert-approval-${crypto.randomUUID()}`, outs: await runApproval(inputs) };
    },
    async update(_id, olds, news) {
        return { outs: await runApproval(news, olds) };
    },
    // Approvals cannot be taken back and the certificates belong to the kubelets: nothing to undo.
    async delete() {},
};

export interface ServingCertApprovalArgs {
    /** `https://host:port` of the API server, normally the VIP endpoint. */
    apiServerUrl: pulumi.Input<string>;
    /** Cluster CA certificate (PEM). A new CA means a new cluster: every node is waited for again. */
    caCertPem: pulumi.Input<string>;
    /** Client certificate allowed to list nodes and approve CSRs for this signer (the admin one). */
    adminCertPem: pulumi.Input<string>;
    /** Its private key; always kept secret. */
    adminKeyPem: pulumi.Input<string>;
    /**
     * The nodes this stack manages (names = kubelet hostnames = node names, ips = kubelet --node-ip).
     * Adding a node, changing its IP or kubeletGeneration waits for that node's CSR again.
     */
    nodes: pulumi.Input<ApprovalNode[]>;
    /** How long create/update waits for every node's serving CSR; default 300. */
    timeoutSeconds?: pulumi.Input<number>;
}

/** Dynamic resource, type token `pulumi-nodejs:dynamic/kubeha:ServingCertApproval`. */
export class ServingCertApproval extends pulumi.dynamic.Resource {
    /** Per node, the approved serving CSRs (approved by kubeha or found approved). */
    declare public readonly approvedCsrs: pulumi.Output<Record<string, string[]>>;
    /** Pending kubelet-serving CSRs refused by the policy on the last run, left untouched, with reasons. */
    declare public readonly refusedCsrs: pulumi.Output<RefusedCsr[]>;
    declare public readonly nodes: pulumi.Output<ApprovalNode[]>;

    constructor(name: string, args: ServingCertApprovalArgs, opts?: pulumi.CustomResourceOptions) {
        super(servingCertApprovalProvider, name, {
            apiServerUrl: args.apiServerUrl,
            caCertPem: args.caCertPem,
            adminCertPem: args.adminCertPem,
            adminKeyPem: pulumi.secret(args.adminKeyPem),
            nodes: args.nodes,
            timeoutSeconds: args.timeoutSeconds,
            approvedCsrs: undefined,
            refusedCsrs: undefined,
        }, {
            ...opts,
            // The provider never returns the key, but if it ever did it must not land in state in clear.
            additionalSecretOutputs: [...new Set([...(opts?.additionalSecretOutputs ?? []), "adminKeyPem"])],
        }, "kubeha", "ServingCertApproval");
    }
}
