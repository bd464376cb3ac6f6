// Which kubelet serving-certificate requests kubeha approves. kube-controller-manager never
// approves `kubernetes.io/kubelet-serving` CSRs (a node could otherwise claim any name or IP), so
// the check it leaves to us is: the requester is a node this stack manages, asking for a serving
// certificate whose subject and SANs are exactly that node's own.
//
// Pure: no I/O. Modules are `require`d inside the functions because this code runs again in the
// dynamic provider's process from Pulumi's closure serialization, which does not replay this file's
// top-level side effects (@peculiar/x509 needs reflect-metadata loaded first).
import type * as X509 from "@peculiar/x509";
import type { CertificateSigningRequest } from "./client";

export const KUBELET_SERVING_SIGNER = "kubernetes.io/kubelet-serving";
export const NODE_USER_PREFIX = "system:node:";
export const NODES_GROUP = "system:nodes";
/** The usages a kubelet asks for: key encipherment only with an RSA key (k8s certificates/v1 helpers). */
export const SERVING_USAGES_REQUIRED = ["digital signature", "server auth"] as const;
export const SERVING_USAGES_OPTIONAL = ["key encipherment"] as const;

export interface ManagedNode {
    /** Node name = kubelet hostname; the CSR's requester is `system:node:<name>` and its only DNS SAN. */
    name: string;
    /** The node's address (kubelet `--node-ip`); the CSR's only IP SAN. */
    ip: string;
}

export type CsrDecision = { approve: true; node: string } | { approve: false; reason: string };

const SAN_OID = "2.5.29.17";

function refuse(reason: string): CsrDecision {
    return { approve: false, reason };
}

function setText(values: Iterable<string>): string {
    return `{${[...values].join(", ")}}`;
}

/** `missing`/`unexpected` members of `actual` against `expected`, or undefined when equal as sets. */
function setMismatch(what: string, actual: string[], expected: string[]): string | undefined {
    const a = new Set(actual);
    const e = new Set(expected);
    const missing = [...e].filter((v) => !a.has(v));
    const unexpected = [...a].filter((v) => !e.has(v));
    if (!missing.length && !unexpected.length) return undefined;
    const parts = [...(missing.length ? [`missing ${missing.join(", ")}`] : []), ...(unexpected.length ? [`unexpected ${unexpected.join(", ")}`] : [])];
    return `${what} ${setText(a)} must be exactly ${setText(e)} (${parts.join("; ")})`;
}

function normalizeIp(ip: string): string {
    const ipaddr = require("ipaddr.js") as typeof import("ipaddr.js");
    try {
        return ipaddr.parse(ip).toNormalizedString();
    } catch {
        return ip;
    }
}

/** The PEM text of `spec.request` (base64 of PEM in the API's JSON), one CERTIFICATE REQUEST block. */
function requestPem(csr: CertificateSigningRequest): string | { error: string } {
    const raw = csr.spec?.request;
    if (typeof raw !== "string" || !raw) return { error: "spec.request is empty" };
    const text = Buffer.from(raw, "base64").toString("utf8");
    const blocks = text.match(/-----BEGIN [A-Z0-9 ]+-----/g) ?? [];
    if (blocks.length !== 1 || blocks[0] !== "-----BEGIN CERTIFICATE REQUEST-----") {
        return { error: `spec.request must hold exactly one PEM CERTIFICATE REQUEST block (found ${blocks.length ? blocks.join(", ") : "none"})` };
    }
    return text;
}

/**
 * Decides one CSR object (certificates.k8s.io/v1, as the API returns it) against the nodes this
 * stack manages. Looks only at the request, never at its status: the caller acts on pending ones.
 * Refusals carry a reason naming the field at fault; the API server has already checked the
 * request's signature (proof of possession) when it accepted the object.
 */
export function decideServingCsr(csr: CertificateSigningRequest, managedNodes: readonly ManagedNode[]): CsrDecision {
    const spec = csr.spec ?? ({} as CertificateSigningRequest["spec"]);
    if (spec.signerName !== KUBELET_SERVING_SIGNER) {
        return refuse(`signerName is ${JSON.stringify(spec.signerName ?? "")}, not ${KUBELET_SERVING_SIGNER}`);
    }
    const username = spec.username ?? "";
    if (!username.startsWith(NODE_USER_PREFIX) || username.length === NODE_USER_PREFIX.length) {
        return refuse(`requester ${JSON.stringify(username)} is not a node (expected ${NODE_USER_PREFIX}<name>)`);
    }
    const nodeName = username.slice(NODE_USER_PREFIX.length);
    const node = managedNodes.find((n) => n.name === nodeName);
    if (!node) return refuse(`requester ${username} is not a node this stack manages`);
    if (!(spec.groups ?? []).includes(NODES_GROUP)) {
        return refuse(`requester ${username} is not in group ${NODES_GROUP} (groups: ${setText(spec.groups ?? [])})`);
    }

    const usages = spec.usages ?? [];
    const allowedUsages = new Set<string>([...SERVING_USAGES_REQUIRED, ...SERVING_USAGES_OPTIONAL]);
    const missingUsages = SERVING_USAGES_REQUIRED.filter((u) => !usages.includes(u));
    const extraUsages = usages.filter((u) => !allowedUsages.has(u));
    if (missingUsages.length || extraUsages.length) {
        return refuse(`usages ${setText(usages)} are not the kubelet serving set {digital signature, server auth[, key encipherment]}`
            + ` (${[...(missingUsages.length ? [`missing ${missingUsages.join(", ")}`] : []), ...(extraUsages.length ? [`not allowed ${extraUsages.join(", ")}`] : [])].join("; ")})`);
    }

    const pem = requestPem(csr);
    if (typeof pem !== "string") return refuse(pem.error);
    require("reflect-metadata");
    const x509 = require("@peculiar/x509") as typeof X509;
    let request: X509.Pkcs10CertificateRequest;
    try {
        request = new x509.Pkcs10CertificateRequest(pem);
    } catch (e) {
        return refuse(`spec.request is not a valid PKCS#10 certificate request: ${(e as Error).message}`);
    }

    const expectedCn = `${NODE_USER_PREFIX}${node.name}`;
    const attributes = request.subjectName.toJSON().flatMap((rdn) => Object.entries(rdn).flatMap(([type, values]) => values.map((value) => ({ type, value: String(value) }))));
    const others = attributes.filter((a) => a.type !== "CN" && a.type !== "O");
    if (others.length) return refuse(`subject has attributes other than CN and O: ${others.map((a) => `${a.type}=${a.value}`).join(", ")}`);
    const cns = attributes.filter((a) => a.type === "CN").map((a) => a.value);
    if (cns.length !== 1 || cns[0] !== expectedCn) {
        return refuse(`subject CN ${setText(cns)} is not the requester's own name ${expectedCn}`);
    }
    const orgs = attributes.filter((a) => a.type === "O").map((a) => a.value);
    if (orgs.length !== 1 || orgs[0] !== NODES_GROUP) return refuse(`subject O ${setText(orgs)} must be exactly {${NODES_GROUP}}`);

    const sanExtensions = request.extensions.filter((e) => e.type === SAN_OID);
    if (sanExtensions.length !== 1) return refuse(`request must carry exactly one subjectAltName extension (found ${sanExtensions.length})`);
    const names = new x509.SubjectAlternativeNameExtension(sanExtensions[0].rawData).names.toJSON();
    const otherNames = names.filter((n) => n.type !== "dns" && n.type !== "ip");
    if (otherNames.length) return refuse(`subjectAltName has names other than DNS and IP: ${otherNames.map((n) => `${n.type}:${n.value}`).join(", ")}`);
    const dnsMismatch = setMismatch("SAN DNS names", names.filter((n) => n.type === "dns").map((n) => n.value), [node.name]);
    if (dnsMismatch) return refuse(dnsMismatch);
    const ipMismatch = setMismatch("SAN IP addresses", names.filter((n) => n.type === "ip").map((n) => normalizeIp(n.value)), [normalizeIp(node.ip)]);
    if (ipMismatch) return refuse(ipMismatch);

    return { approve: true, node: node.name };
}
