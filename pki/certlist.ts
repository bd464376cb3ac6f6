// The cluster's certificates as data (after kubeadm's certlist.go): one row per certificate kind,
// expanded per host where each member needs its own. The CertificateAuthority component, the
// render command and the tests all read this table.
import { ClusterSpec, Host } from "../spec/types";
import { ETCD_PKI_DIR, KUBECONFIG, PKI_DIR } from "../render/paths";

export type CaName = "ca" | "etcd-ca" | "front-proxy-ca";
export type Usage = "digital_signature" | "key_encipherment" | "server_auth" | "client_auth" | "cert_signing" | "crl_signing";

const SERVER: Usage[] = ["digital_signature", "key_encipherment", "server_auth"];
const CLIENT: Usage[] = ["digital_signature", "key_encipherment", "client_auth"];
const PEER: Usage[] = ["digital_signature", "key_encipherment", "server_auth", "client_auth"];
export const CA_USAGES: Usage[] = ["cert_signing", "crl_signing", "digital_signature", "key_encipherment"];

export interface CaSpec {
    name: CaName;
    commonName: string;
    certPath: string;
    keyPath: string;
    /** Hosts that get the CA certificate (to verify peers). */
    certHosts: (s: ClusterSpec) => Host[];
    /** Hosts that get the CA key (only where something signs with it). */
    keyHosts: (s: ClusterSpec) => Host[];
}

export const CAS: readonly CaSpec[] = [
    {
        name: "ca", commonName: "kubernetes-ca", certPath: `${PKI_DIR}/ca.crt`, keyPath: `${PKI_DIR}/ca.key`,
        certHosts: (s) => s.hosts,
        keyHosts: (s) => s.masters, // kube-controller-manager signs kubelet client certificates
    },
    {
        name: "etcd-ca", commonName: "etcd-ca", certPath: `${ETCD_PKI_DIR}/ca.crt`, keyPath: `${ETCD_PKI_DIR}/ca.key`,
        certHosts: (s) => nodesRunningFlannel(s), keyHosts: () => [],
    },
    {
        name: "front-proxy-ca", commonName: "kubernetes-front-proxy-ca", certPath: `${PKI_DIR}/front-proxy-ca.crt`,
        keyPath: `${PKI_DIR}/front-proxy-ca.key`, certHosts: (s) => s.masters, keyHosts: () => [],
    },
];

/** Where a certificate lands on its hosts: PEM files, or embedded in a kubeconfig. */
export type Placement =
    | { kind: "files"; certPath: string; keyPath: string }
    | { kind: "kubeconfig"; path: string; server: (s: ClusterSpec) => string };

export interface CertSpec {
    /** Unique, stable: becomes part of Pulumi resource names. */
    name: string;
    signer: CaName;
    commonName: string;
    organization?: string;
    usages: Usage[];
    dnsNames: string[];
    ipAddresses: string[];
    /** Hosts that receive this certificate and its key. */
    hosts: Host[];
    placement: Placement;
}

interface CertRow {
    name: string;
    signer: CaName;
    usages: Usage[];
    commonName: (h: Host) => string;
    organization?: string;
    sans?: (s: ClusterSpec, h: Host) => { dns: string[]; ips: string[] };
    /** one: a single certificate shared by `hosts`; perHost: one certificate per host. */
    scope: "one" | "perHost";
    hosts: (s: ClusterSpec) => Host[];
    placement: Placement;
}

export function nodesRunningFlannel(s: ClusterSpec): Host[] {
    return s.hosts.filter((h) => h.roles.includes("master") || h.roles.includes("worker"));
}

const localApiserver = (s: ClusterSpec) => `https://127.0.0.1:${s.ports.apiserver}`;
const files = (base: string): Placement => ({ kind: "files", certPath: `${base}.crt`, keyPath: `${base}.key` });

export function apiserverSans(s: ClusterSpec): { dns: string[]; ips: string[] } {
    const exposed = [...s.masters, ...s.loadBalancers];
    return {
        dns: unique(["kubernetes", "kubernetes.default", "kubernetes.default.svc", `kubernetes.default.svc.${s.network.clusterDomain}`,
            "localhost", ...exposed.map((h) => h.name)]),
        ips: unique([s.kubernetesServiceIp, ...(s.loadBalancer ? [s.loadBalancer.vip] : []), ...exposed.map((h) => h.ip), "127.0.0.1"]),
    };
}

export const CERT_ROWS: readonly CertRow[] = [
    {
        name: "apiserver", signer: "ca", usages: SERVER, scope: "one", hosts: (s) => s.masters,
        commonName: () => "kube-apiserver", sans: (s) => apiserverSans(s), placement: files(`${PKI_DIR}/apiserver`),
    },
    {
        name: "apiserver-kubelet-client", signer: "ca", usages: CLIENT, scope: "one", hosts: (s) => s.masters,
        commonName: () => "kube-apiserver-kubelet-client", placement: files(`${PKI_DIR}/apiserver-kubelet-client`),
    },
    {
        name: "apiserver-etcd-client", signer: "etcd-ca", usages: CLIENT, scope: "one", hosts: (s) => s.masters,
        commonName: () => "kube-apiserver-etcd-client", placement: files(`${PKI_DIR}/apiserver-etcd-client`),
    },
    {
        name: "front-proxy-client", signer: "front-proxy-ca", usages: CLIENT, scope: "one", hosts: (s) => s.masters,
        commonName: () => "front-proxy-client", placement: files(`${PKI_DIR}/front-proxy-client`),
    },
    {
        name: "etcd-server", signer: "etcd-ca", usages: PEER, scope: "perHost", hosts: (s) => s.masters,
        commonName: (h) => h.name, sans: (_s, h) => ({ dns: [h.name, "localhost"], ips: [h.ip, "127.0.0.1"] }),
        placement: files(`${ETCD_PKI_DIR}/server`),
    },
    {
        name: "etcd-peer", signer: "etcd-ca", usages: PEER, scope: "perHost", hosts: (s) => s.masters,
        commonName: (h) => h.name, sans: (_s, h) => ({ dns: [h.name, "localhost"], ips: [h.ip, "127.0.0.1"] }),
        placement: files(`${ETCD_PKI_DIR}/peer`),
    },
    {
        name: "etcd-healthcheck-client", signer: "etcd-ca", usages: CLIENT, scope: "one", hosts: (s) => s.masters,
        commonName: () => "kube-etcd-healthcheck-client", placement: files(`${ETCD_PKI_DIR}/healthcheck-client`),
    },
    {
        name: "flanneld", signer: "etcd-ca", usages: CLIENT, scope: "one", hosts: nodesRunningFlannel,
        commonName: () => "flanneld", placement: files(`${PKI_DIR}/flanneld-etcd-client`),
    },
    {
        name: "admin", signer: "ca", usages: CLIENT, scope: "one", hosts: (s) => s.masters,
        commonName: () => "kubernetes-admin", organization: "system:masters",
        placement: { kind: "kubeconfig", path: KUBECONFIG.admin, server: (s) => s.apiEndpoint.url },
    },
    {
        name: "controller-manager", signer: "ca", usages: CLIENT, scope: "perHost", hosts: (s) => s.masters,
        commonName: () => "system:kube-controller-manager",
        placement: { kind: "kubeconfig", path: KUBECONFIG.controllerManager, server: localApiserver },
    },
    {
        name: "scheduler", signer: "ca", usages: CLIENT, scope: "perHost", hosts: (s) => s.masters,
        commonName: () => "system:kube-scheduler",
        placement: { kind: "kubeconfig", path: KUBECONFIG.scheduler, server: localApiserver },
    },
    {
        name: "kube-proxy", signer: "ca", usages: CLIENT, scope: "one", hosts: (s) => s.workers,
        commonName: () => "system:kube-proxy",
        placement: { kind: "kubeconfig", path: KUBECONFIG.kubeProxy, server: (s) => s.apiEndpoint.url },
    },
];

function unique<T>(xs: T[]): T[] {
    return [...new Set(xs)];
}

/** Every leaf certificate of the cluster, expanded per host; rows with no hosts are left out. */
export function certificatesFor(s: ClusterSpec): CertSpec[] {
    return CERT_ROWS.flatMap((row) => {
        const hosts = row.hosts(s);
        if (hosts.length === 0) return [];
        const groups: [string, Host[]][] = row.scope === "one"
            ? [[row.name, hosts]]
            : hosts.map((h) => [`${row.name}-${h.name}`, [h]]);
        return groups.map(([name, hs]) => {
            const sans = row.sans?.(s, hs[0]) ?? { dns: [], ips: [] };
            return {
                name, signer: row.signer, commonName: row.commonName(hs[0]), organization: row.organization,
                usages: row.usages, dnsNames: sans.dns, ipAddresses: sans.ips, hosts: hs, placement: row.placement,
            };
        });
    });
}

/** The bootstrap kubeconfig uses a token, not a certificate; it still belongs to the PKI plan. */
export const BOOTSTRAP_KUBECONFIG = {
    path: KUBECONFIG.bootstrapKubelet,
    hosts: (s: ClusterSpec) => s.workers,
    user: "kubelet-bootstrap",
};

export const SERVICE_ACCOUNT_KEY = {
    publicPath: `${PKI_DIR}/sa.pub`,
    privatePath: `${PKI_DIR}/sa.key`,
    hosts: (s: ClusterSpec) => s.masters,
};
