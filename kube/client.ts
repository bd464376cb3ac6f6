// A minimal Kubernetes REST client over node:https with client-certificate auth: just what kubeha
// needs at deploy time (CSRs, their approval, nodes) and a polling helper. No kubeconfig parsing,
// no watch. Modules are `require`d inside the functions because this code also runs in the dynamic
// provider's process from Pulumi's closure serialization (see components/serving-cert-approver.ts).
import type * as Https from "node:https";

export interface ObjectMeta {
    name: string;
    resourceVersion?: string;
    uid?: string;
    creationTimestamp?: string;
    [key: string]: unknown;
}

export interface CsrCondition {
    type: "Approved" | "Denied" | "Failed" | string;
    status: "True" | "False" | "Unknown" | string;
    reason?: string;
    message?: string;
    lastUpdateTime?: string;
    lastTransitionTime?: string;
}

/** certificates.k8s.io/v1 CertificateSigningRequest, the fields kubeha reads. */
export interface CertificateSigningRequest {
    apiVersion?: string;
    kind?: string;
    metadata: ObjectMeta;
    spec: {
        /** base64 of the PEM "CERTIFICATE REQUEST" ([]byte in the API). */
        request: string;
        signerName: string;
        usages?: string[];
        username?: string;
        uid?: string;
        groups?: string[];
        expirationSeconds?: number;
        [key: string]: unknown;
    };
    status?: { conditions?: CsrCondition[]; certificate?: string; [key: string]: unknown };
}

export interface KubeNode {
    metadata: ObjectMeta;
    status?: { addresses?: { type: string; address: string }[]; [key: string]: unknown };
}

export interface KubeClientConfig {
    /** `https://host:port` of the API server (the VIP endpoint). */
    server: string;
    /** PEM of the cluster CA that signed the API server's certificate. */
    caCertPem: string;
    clientCertPem: string;
    clientKeyPem: string;
    /** Per request; default 15 s. */
    requestTimeoutMs?: number;
}

/** An HTTP error answer from the API server (statusCode ≥ 400), with the Status object's reason. */
export interface KubeApiError extends Error {
    statusCode: number;
    reason?: string;
    method: string;
    path: string;
}

export function isKubeApiError(e: unknown): e is KubeApiError {
    return e instanceof Error && typeof (e as Partial<KubeApiError>).statusCode === "number";
}

/** True for failures worth retrying while waiting: no connection, timeouts, 429 and 5xx. */
export function isTransientKubeError(e: unknown): boolean {
    if (isKubeApiError(e)) return e.statusCode === 429 || e.statusCode >= 500;
    const code = (e as { code?: unknown } | undefined)?.code;
    return typeof code === "string" && ["ECONNREFUSED", "ECONNRESET", "EHOSTUNREACH", "ENETUNREACH", "ETIMEDOUT", "EPIPE", "EAI_AGAIN", "ENOTFOUND", "KUBE_TIMEOUT"].includes(code);
}

export type CsrState = "pending" | "approved" | "denied" | "failed";

/** Denied and Failed are final; Approved without them means approved (issued once status.certificate is set). */
export function csrState(csr: CertificateSigningRequest): CsrState {
    const conditions = (csr.status?.conditions ?? []).filter((c) => c.status === "True");
    if (conditions.some((c) => c.type === "Denied")) return "denied";
    if (conditions.some((c) => c.type === "Failed")) return "failed";
    if (conditions.some((c) => c.type === "Approved")) return "approved";
    return "pending";
}

export const CSR_API = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
export const APPROVAL_REASON = "KubehaServingCertApproved";

export interface KubeClient {
    /** One JSON request; rejects with a KubeApiError for statusCode ≥ 400. */
    request<T>(method: "GET" | "PUT" | "POST" | "PATCH" | "DELETE", path: string, body?: unknown): Promise<T>;
    /** Every CSR (following `continue`), optionally only one signer's (field selector spec.signerName). */
    listCertificateSigningRequests(opts?: { signerName?: string }): Promise<CertificateSigningRequest[]>;
    getCertificateSigningRequest(name: string): Promise<CertificateSigningRequest>;
    /**
     * Adds the Approved condition through the approval subresource. A 409 (someone changed the
     * object since `csr` was read) re-reads it and tries again; an already approved CSR is returned
     * as is; a denied or failed one rejects.
     */
    approveCertificateSigningRequest(csr: CertificateSigningRequest, message: string): Promise<CertificateSigningRequest>;
    listNodes(): Promise<KubeNode[]>;
}

interface ListResult<T> {
    items?: T[];
    metadata?: { continue?: string };
}

function apiError(method: string, path: string, statusCode: number, body: string): KubeApiError {
    const status = ((): { message?: string; reason?: string } => {
        try {
            return JSON.parse(body);
        } catch {
            return { message: body.slice(0, 200) };
        }
    })();
    const e = new Error(`${method} ${path}: HTTP ${statusCode}${status.reason ? ` ${status.reason}` : ""}${status.message ? `: ${status.message}` : ""}`) as KubeApiError;
    e.statusCode = statusCode;
    e.reason = status.reason;
    e.method = method;
    e.path = path;
    return e;
}

export function createKubeClient(config: KubeClientConfig): KubeClient {
    const https = require("node:https") as typeof Https;
    const base = new URL(config.server);
    if (base.protocol !== "https:") throw new Error(`API server URL must be https://, got ${config.server}`);
    const timeoutMs = config.requestTimeoutMs ?? 15_000;
    const prefix = base.pathname.replace(/\/+$/, "");

    function request<T>(method: string, path: string, body?: unknown): Promise<T> {
        const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
        return new Promise<T>((resolve, reject) => {
            const req = https.request({
                protocol: "https:",
                hostname: base.hostname.replace(/^\[(.*)\]$/, "$1"),
                port: base.port || 443,
                path: prefix + path,
                method,
                ca: config.caCertPem,
                cert: config.clientCertPem,
                key: config.clientKeyPem,
                // One connection per request: nothing lingers in the provider process or in tests.
                agent: false,
                headers: {
                    Accept: "application/json",
                    "User-Agent": "kubeha",
                    ...(payload ? { "Content-Type": "application/json", "Content-Length": payload.length } : {}),
                },
            }, (res) => {
                const chunks: Buffer[] = [];
                res.on("data", (c: Buffer) => chunks.push(c));
                res.on("error", reject);
                res.on("end", () => {
                    const text = Buffer.concat(chunks).toString("utf8");
                    const status = res.statusCode ?? 0;
                    if (status >= 400 || status < 200) return reject(apiError(method, path, status, text));
                    try {
                        resolve((text ? JSON.parse(text) : undefined) as T);
                    } catch (e) {
                        reject(new Error(`${method} ${path}: answer is not JSON: ${(e as Error).message}`));
                    }
                });
            });
            req.setTimeout(timeoutMs, () => {
                req.destroy(Object.assign(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`), { code: "KUBE_TIMEOUT" }));
            });
            req.on("error", reject);
            req.end(payload);
        });
    }

    async function listAll<T>(path: string, query: Record<string, string>): Promise<T[]> {
        const items: T[] = [];
        let next: string | undefined;
        do {
            const params = new URLSearchParams({ ...query, limit: "500", ...(next ? { continue: next } : {}) });
            const page = await request<ListResult<T>>("GET", `${path}?${params}`);
            items.push(...(page.items ?? []));
            next = page.metadata?.continue || undefined;
        } while (next);
        return items;
    }

    const csrPath = (name: string) => `${CSR_API}/${encodeURIComponent(name)}`;

    async function approveCertificateSigningRequest(csr: CertificateSigningRequest, message: string): Promise<CertificateSigningRequest> {
        let current = csr;
        for (let attempt = 1; ; attempt++) {
            const state = csrState(current);
            if (state === "approved") return current;
            if (state !== "pending") throw new Error(`CSR ${current.metadata.name} is ${state}; not approving it`);
            const condition: CsrCondition = {
                type: "Approved", status: "True", reason: APPROVAL_REASON, message, lastUpdateTime: new Date().toISOString(),
            };
            // List items come without apiVersion/kind; name them so the body stands on its own.
            const body = {
                ...current, apiVersion: "certificates.k8s.io/v1", kind: "CertificateSigningRequest",
                status: { ...current.status, conditions: [...(current.status?.conditions ?? []), condition] },
            };
            try {
                return await request<CertificateSigningRequest>("PUT", `${csrPath(current.metadata.name)}/approval`, body);
            } catch (e) {
                if (!isKubeApiError(e) || e.statusCode !== 409 || attempt >= 5) throw e;
                current = await request<CertificateSigningRequest>("GET", csrPath(current.metadata.name));
            }
        }
    }

    return {
        request: request as KubeClient["request"],
        listCertificateSigningRequests: (opts) =>
            listAll<CertificateSigningRequest>(CSR_API, opts?.signerName ? { fieldSelector: `spec.signerName=${opts.signerName}` } : {}),
        getCertificateSigningRequest: (name) => request<CertificateSigningRequest>("GET", csrPath(name)),
        approveCertificateSigningRequest,
        listNodes: () => listAll<KubeNode>("/api/v1/nodes", {}),
    };
}

export type ProbeResult<T> = { done: true; value: T } | { done: false; detail: string };

export interface WaitOptions {
    timeoutMs: number;
    /** Pause between probes; default 2 s. */
    intervalMs?: number;
}

/**
 * Calls `probe` until it reports done or `timeoutMs` has passed. Transient API failures (no
 * connection, 429, 5xx) count as "not yet"; any other error ends the wait at once. The timeout
 * error names `what` and the last probe's detail.
 */
export async function waitUntil<T>(what: string, probe: () => Promise<ProbeResult<T>>, opts: WaitOptions): Promise<T> {
    const interval = opts.intervalMs ?? 2000;
    const deadline = Date.now() + opts.timeoutMs;
    for (;;) {
        let detail: string;
        try {
            const r = await probe();
            if (r.done) return r.value;
            detail = r.detail;
        } catch (e) {
            if (!isTransientKubeError(e)) throw e;
            detail = (e as Error).message;
        }
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out after ${Math.round(opts.timeoutMs / 1000)} s waiting for ${what}: ${detail}`);
        await new Promise((r) => setTimeout(r, Math.min(interval, left)));
    }
}
