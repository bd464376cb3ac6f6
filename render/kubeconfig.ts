import { stringify } from "yaml";

export interface KubeconfigInput {
    clusterName: string;
    server: string;
    caCertPem: string;
    user: string;
    /** Client certificate auth ... */
    clientCertPem?: string;
    clientKeyPem?: string;
    /** ... or a bearer token (kubelet TLS bootstrap). */
    token?: string;
}

const b64 = (s: string) => Buffer.from(s).toString("base64");

export function renderKubeconfig(k: KubeconfigInput): string {
    const user = k.token !== undefined
        ? { token: k.token }
        : { "client-certificate-data": b64(k.clientCertPem ?? ""), "client-key-data": b64(k.clientKeyPem ?? "") };
    const context = `${k.user}@${k.clusterName}`;
    return stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: k.clusterName, cluster: { server: k.server, "certificate-authority-data": b64(k.caCertPem) } }],
        users: [{ name: k.user, user }],
        contexts: [{ name: context, context: { cluster: k.clusterName, user: k.user } }],
        "current-context": context,
    });
}
