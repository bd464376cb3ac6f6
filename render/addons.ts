// Cluster add-on manifests — CoreDNS, metrics-server, Headlamp — as plain objects serialized to one
// multi-document YAML per add-on, to be applied with `kubectl apply --server-side -f -`.
//
// Sources the objects follow (read for facts, rebuilt here as data):
// - CoreDNS: kubeadm's cmd/kubeadm/app/phases/addons/dns/manifests.go and coredns/deployment
//   kubernetes/coredns.yaml.sed (Corefile, RBAC incl. EndpointSlices, probes, security context).
// - metrics-server: kubernetes-sigs/metrics-server manifests/base (= release components.yaml, v0.8.x).
// - Headlamp: kubernetes-sigs/headlamp kubernetes-headlamp.yaml (the plain in-cluster manifest, in
//   kube-system) and the chart's container security context.
import * as ipaddr from "ipaddr.js";
import { stringify } from "yaml";

export type AddonName = "coredns" | "metrics-server" | "headlamp";

/** Rendering order: DNS first, the UI last. */
export const ADDON_NAMES: readonly AddonName[] = ["coredns", "metrics-server", "headlamp"];

export interface AddonParams {
    /** The kube-dns Service's cluster IP (the kubelets' clusterDNS), inside the service CIDR. */
    clusterDns: string;
    /** The cluster domain, e.g. `cluster.local` (the kubelets' clusterDomain). */
    clusterDomain: string;
    /**
     * Where CoreDNS forwards names outside the cluster domain: IPs (`1.1.1.1`, `[2606:4700::1]:53`,
     * `tls://9.9.9.9`) or a resolv.conf path. Default: `/etc/resolv.conf` — with `dnsPolicy: Default`
     * that is the node's file the kubelet hands the pod (kubelet `resolvConf`), which must not name a
     * local stub such as systemd-resolved's 127.0.0.53, or the `loop` plugin stops CoreDNS.
     */
    upstreamDns?: string[];
    /** Container images (with tag or digest); nothing else picks an image. */
    images: { coredns: string; metricsServer: string; headlamp: string };
    /** Which add-ons to render; the others produce nothing. */
    enabled: AddonName[];
    /** CoreDNS replicas. Default 2 (kept on different nodes when possible). */
    corednsReplicas?: number;
    /**
     * Also render the `headlamp-admin` ServiceAccount and its cluster-admin ClusterRoleBinding in
     * kube-system, so that logging in only needs `kubectl create token`. Default false: who may
     * administer the cluster through the UI is the operator's decision (see HEADLAMP_LOGIN_HELP).
     * No long-lived token Secret is ever rendered.
     */
    headlampAdmin?: boolean;
}

export interface AddonManifest {
    /** The add-on, e.g. `coredns`. */
    name: AddonName;
    /** Multi-document YAML. */
    yaml: string;
}

/** The metrics-server release whose components.yaml the objects below follow. */
export const METRICS_SERVER_MANIFEST_VERSION = "0.8";

export const HEADLAMP_NAMESPACE = "kube-system";
export const HEADLAMP_ADMIN = "headlamp-admin";

/** How to log in to Headlamp; for the README and the stack outputs. */
export const HEADLAMP_LOGIN_HELP = `Headlamp (the Kubernetes web UI) signs users in with a Kubernetes bearer token; kubeha stores no
long-lived login token in the cluster. To log in as a cluster administrator:

1. Once, create the identity (skip this step when kubeha:headlampAdmin is true — kubeha then
   renders both objects):
     kubectl -n ${HEADLAMP_NAMESPACE} create serviceaccount ${HEADLAMP_ADMIN}
     kubectl create clusterrolebinding ${HEADLAMP_ADMIN} --clusterrole=cluster-admin --serviceaccount=${HEADLAMP_NAMESPACE}:${HEADLAMP_ADMIN}
   (bind a narrower ClusterRole such as "view" for read-only users)
2. Each time, mint a short-lived token (add --duration=8h for a longer one):
     kubectl create token ${HEADLAMP_ADMIN} -n ${HEADLAMP_NAMESPACE}
3. Reach the UI and paste the token at the login prompt:
     kubectl port-forward -n ${HEADLAMP_NAMESPACE} svc/headlamp 8080:80
     then open http://localhost:8080
`;

type K8sObject = Record<string, unknown>;

const MANAGED_BY = { "app.kubernetes.io/managed-by": "kubeha" };

function labels(addon: AddonName, extra: Record<string, string> = {}): Record<string, string> {
    return { ...extra, "app.kubernetes.io/name": addon, ...MANAGED_BY };
}

function meta(addon: AddonName, name: string, namespace?: string, extra: {
    labels?: Record<string, string>; annotations?: Record<string, string>;
} = {}): K8sObject {
    return {
        name,
        ...(namespace ? { namespace } : {}),
        labels: labels(addon, extra.labels),
        ...(extra.annotations ? { annotations: extra.annotations } : {}),
    };
}

const RBAC = "rbac.authorization.k8s.io";

function serviceAccount(addon: AddonName, name: string, namespace: string): K8sObject {
    return { apiVersion: "v1", kind: "ServiceAccount", metadata: meta(addon, name, namespace) };
}

function clusterRoleBinding(addon: AddonName, name: string, role: string, sa: { name: string; namespace: string }): K8sObject {
    return {
        apiVersion: `${RBAC}/v1`,
        kind: "ClusterRoleBinding",
        metadata: meta(addon, name),
        roleRef: { apiGroup: RBAC, kind: "ClusterRole", name: role },
        subjects: [{ kind: "ServiceAccount", name: sa.name, namespace: sa.namespace }],
    };
}

const RESTRICTED_CONTAINER = {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ["ALL"] },
    seccompProfile: { type: "RuntimeDefault" },
};

// ---------------------------------------------------------------------------------------------
// CoreDNS

const DNS_SELECTOR = { "k8s-app": "kube-dns" };

/** The Corefile of current kubeadm, with our domain and upstreams. */
export function renderCorefile(clusterDomain: string, upstreams: string[]): string {
    return [
        ".:53 {",
        "    errors",
        "    health {",
        "       lameduck 5s",
        "    }",
        "    ready",
        `    kubernetes ${clusterDomain} in-addr.arpa ip6.arpa {`,
        "       pods insecure",
        "       fallthrough in-addr.arpa ip6.arpa",
        "       ttl 30",
        "    }",
        "    prometheus :9153",
        `    forward . ${upstreams.join(" ")} {`,
        "       max_concurrent 1000",
        "    }",
        // The kubernetes plugin answers from its watch cache already; caching its answers again
        // only serves stale Service/endpoint records (as current kubeadm's Corefile does).
        "    cache 30 {",
        `       disable success ${clusterDomain}`,
        `       disable denial ${clusterDomain}`,
        "    }",
        "    loop",
        "    reload",
        "    loadbalance",
        "}",
        "",
    ].join("\n");
}

function corednsObjects(p: AddonParams): K8sObject[] {
    const ns = "kube-system";
    const a: AddonName = "coredns";
    const upstreams = p.upstreamDns?.length ? p.upstreamDns : ["/etc/resolv.conf"];
    return [
        serviceAccount(a, "coredns", ns),
        {
            apiVersion: `${RBAC}/v1`,
            kind: "ClusterRole",
            metadata: meta(a, "system:coredns"),
            rules: [
                { apiGroups: [""], resources: ["endpoints", "services", "pods", "namespaces"], verbs: ["list", "watch"] },
                { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"] },
            ],
        },
        clusterRoleBinding(a, "system:coredns", "system:coredns", { name: "coredns", namespace: ns }),
        {
            apiVersion: "v1",
            kind: "ConfigMap",
            metadata: meta(a, "coredns", ns),
            data: { Corefile: renderCorefile(p.clusterDomain, upstreams) },
        },
        {
            apiVersion: "apps/v1",
            kind: "Deployment",
            metadata: meta(a, "coredns", ns, { labels: DNS_SELECTOR }),
            spec: {
                replicas: p.corednsReplicas ?? 2,
                strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } },
                selector: { matchLabels: DNS_SELECTOR },
                template: {
                    metadata: { labels: labels(a, DNS_SELECTOR) },
                    spec: {
                        priorityClassName: "system-cluster-critical",
                        serviceAccountName: "coredns",
                        affinity: {
                            podAntiAffinity: {
                                preferredDuringSchedulingIgnoredDuringExecution: [{
                                    weight: 100,
                                    podAffinityTerm: {
                                        labelSelector: { matchExpressions: [{ key: "k8s-app", operator: "In", values: ["kube-dns"] }] },
                                        topologyKey: "kubernetes.io/hostname",
                                    },
                                }],
                            },
                        },
                        tolerations: [
                            { key: "CriticalAddonsOnly", operator: "Exists" },
                            { key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule" },
                        ],
                        nodeSelector: { "kubernetes.io/os": "linux" },
                        // Cluster DNS must not resolve through itself: the node's resolver config.
                        dnsPolicy: "Default",
                        containers: [{
                            name: "coredns",
                            image: p.images.coredns,
                            imagePullPolicy: "IfNotPresent",
                            args: ["-conf", "/etc/coredns/Corefile"],
                            resources: { limits: { memory: "170Mi" }, requests: { cpu: "100m", memory: "70Mi" } },
                            volumeMounts: [{ name: "config-volume", mountPath: "/etc/coredns", readOnly: true }],
                            ports: [
                                { containerPort: 53, name: "dns", protocol: "UDP" },
                                { containerPort: 53, name: "dns-tcp", protocol: "TCP" },
                                { containerPort: 9153, name: "metrics", protocol: "TCP" },
                                { containerPort: 8080, name: "liveness-probe", protocol: "TCP" },
                                { containerPort: 8181, name: "readiness-probe", protocol: "TCP" },
                            ],
                            livenessProbe: {
                                httpGet: { path: "/health", port: "liveness-probe", scheme: "HTTP" },
                                initialDelaySeconds: 60, timeoutSeconds: 5, successThreshold: 1, failureThreshold: 5,
                            },
                            readinessProbe: { httpGet: { path: "/ready", port: "readiness-probe", scheme: "HTTP" } },
                            securityContext: {
                                ...RESTRICTED_CONTAINER,
                                // The image binds :53 as its user through a file capability, which
                                // only works while NET_BIND_SERVICE stays in the container's set.
                                capabilities: { add: ["NET_BIND_SERVICE"], drop: ["ALL"] },
                                readOnlyRootFilesystem: true,
                                // The image says `USER nonroot:nonroot`; a name the kubelet cannot
                                // check against runAsNonRoot, so the numeric ids are spelled out.
                                runAsNonRoot: true,
                                runAsUser: 65532,
                                runAsGroup: 65532,
                            },
                        }],
                        volumes: [{
                            name: "config-volume",
                            configMap: { name: "coredns", items: [{ key: "Corefile", path: "Corefile" }] },
                        }],
                    },
                },
            },
        },
        {
            // Node drains evict CoreDNS pods one at a time.
            apiVersion: "policy/v1",
            kind: "PodDisruptionBudget",
            metadata: meta(a, "coredns", ns, { labels: DNS_SELECTOR }),
            spec: { maxUnavailable: 1, selector: { matchLabels: DNS_SELECTOR } },
        },
        {
            apiVersion: "v1",
            kind: "Service",
            metadata: meta(a, "kube-dns", ns, {
                labels: { ...DNS_SELECTOR, "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS" },
                annotations: { "prometheus.io/port": "9153", "prometheus.io/scrape": "true" },
            }),
            spec: {
                selector: DNS_SELECTOR,
                clusterIP: p.clusterDns,
                ports: [
                    { name: "dns", port: 53, protocol: "UDP", targetPort: 53 },
                    { name: "dns-tcp", port: 53, protocol: "TCP", targetPort: 53 },
                    { name: "metrics", port: 9153, protocol: "TCP", targetPort: 9153 },
                ],
            },
        },
    ];
}

// ---------------------------------------------------------------------------------------------
// metrics-server

const METRICS_SELECTOR = { "k8s-app": "metrics-server" };

/**
 * No `--kubelet-insecure-tls`: metrics-server verifies each kubelet's serving certificate against
 * the CA in its service-account bundle (the cluster CA), which signs the kubelets' serving CSRs
 * here; the certificates must carry the node's InternalIP, the first preferred address type.
 */
export const METRICS_SERVER_ARGS = [
    "--cert-dir=/tmp",
    "--secure-port=10250",
    "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
    "--kubelet-use-node-status-port",
    "--metric-resolution=15s",
];

function metricsServerObjects(p: AddonParams): K8sObject[] {
    const ns = "kube-system";
    const a: AddonName = "metrics-server";
    const sa = { name: "metrics-server", namespace: ns };
    const l = (extra: Record<string, string> = {}) => ({ labels: { ...METRICS_SELECTOR, ...extra } });
    return [
        { apiVersion: "v1", kind: "ServiceAccount", metadata: meta(a, sa.name, ns, l()) },
        {
            apiVersion: `${RBAC}/v1`,
            kind: "ClusterRole",
            metadata: meta(a, "system:aggregated-metrics-reader", undefined, l({
                [`${RBAC}/aggregate-to-admin`]: "true",
                [`${RBAC}/aggregate-to-edit`]: "true",
                [`${RBAC}/aggregate-to-view`]: "true",
            })),
            rules: [{ apiGroups: ["metrics.k8s.io"], resources: ["pods", "nodes"], verbs: ["get", "list", "watch"] }],
        },
        {
            apiVersion: `${RBAC}/v1`,
            kind: "ClusterRole",
            metadata: meta(a, "system:metrics-server", undefined, l()),
            rules: [
                { apiGroups: [""], resources: ["nodes/metrics"], verbs: ["get"] },
                { apiGroups: [""], resources: ["pods", "nodes"], verbs: ["get", "list", "watch"] },
            ],
        },
        {
            apiVersion: `${RBAC}/v1`,
            kind: "RoleBinding",
            metadata: meta(a, "metrics-server-auth-reader", ns, l()),
            roleRef: { apiGroup: RBAC, kind: "Role", name: "extension-apiserver-authentication-reader" },
            subjects: [{ kind: "ServiceAccount", ...sa }],
        },
        withLabels(clusterRoleBinding(a, "metrics-server:system:auth-delegator", "system:auth-delegator", sa), METRICS_SELECTOR),
        withLabels(clusterRoleBinding(a, "system:metrics-server", "system:metrics-server", sa), METRICS_SELECTOR),
        {
            apiVersion: "v1",
            kind: "Service",
            metadata: meta(a, "metrics-server", ns, l()),
            spec: {
                selector: METRICS_SELECTOR,
                ports: [{ name: "https", port: 443, protocol: "TCP", targetPort: "https" }],
            },
        },
        {
            apiVersion: "apps/v1",
            kind: "Deployment",
            metadata: meta(a, "metrics-server", ns, l()),
            spec: {
                selector: { matchLabels: METRICS_SELECTOR },
                strategy: { rollingUpdate: { maxUnavailable: 0 } },
                template: {
                    metadata: { labels: labels(a, METRICS_SELECTOR) },
                    spec: {
                        serviceAccountName: sa.name,
                        priorityClassName: "system-cluster-critical",
                        nodeSelector: { "kubernetes.io/os": "linux" },
                        containers: [{
                            name: "metrics-server",
                            image: p.images.metricsServer,
                            imagePullPolicy: "IfNotPresent",
                            args: METRICS_SERVER_ARGS,
                            ports: [{ name: "https", containerPort: 10250, protocol: "TCP" }],
                            readinessProbe: {
                                httpGet: { path: "/readyz", port: "https", scheme: "HTTPS" },
                                initialDelaySeconds: 20, periodSeconds: 10, failureThreshold: 3,
                            },
                            livenessProbe: {
                                httpGet: { path: "/livez", port: "https", scheme: "HTTPS" },
                                periodSeconds: 10, failureThreshold: 3,
                            },
                            resources: { requests: { cpu: "100m", memory: "200Mi" } },
                            securityContext: {
                                ...RESTRICTED_CONTAINER,
                                readOnlyRootFilesystem: true,
                                runAsNonRoot: true,
                                runAsUser: 1000,
                            },
                            volumeMounts: [{ name: "tmp-dir", mountPath: "/tmp" }],
                        }],
                        // --cert-dir: the self-signed serving certificate is written here.
                        volumes: [{ name: "tmp-dir", emptyDir: {} }],
                    },
                },
            },
        },
        {
            apiVersion: "apiregistration.k8s.io/v1",
            kind: "APIService",
            metadata: meta(a, "v1beta1.metrics.k8s.io", undefined, l()),
            spec: {
                service: { name: "metrics-server", namespace: ns },
                group: "metrics.k8s.io",
                version: "v1beta1",
                // Upstream's default, kept: metrics-server makes itself a throwaway self-signed
                // serving certificate at start (--cert-dir=/tmp), so there is no CA to pin in a
                // caBundle. It only affects the hop kube-apiserver (aggregator) -> metrics-server:
                // the apiserver does not verify whom it talks to there. metrics-server still
                // authenticates the apiserver (front-proxy client cert, requestheader CA), and its
                // own scrapes of the kubelets stay verified (no --kubelet-insecure-tls).
                insecureSkipTLSVerify: true,
                groupPriorityMinimum: 100,
                versionPriority: 100,
            },
        },
    ];
}

function withLabels(o: K8sObject, extra: Record<string, string>): K8sObject {
    const m = o.metadata as { labels: Record<string, string> };
    return { ...o, metadata: { ...m, labels: { ...extra, ...m.labels } } };
}

// ---------------------------------------------------------------------------------------------
// Headlamp

const HEADLAMP_SELECTOR = { "k8s-app": "headlamp" };

function headlampObjects(p: AddonParams): K8sObject[] {
    const ns = HEADLAMP_NAMESPACE;
    const a: AddonName = "headlamp";
    const l = { labels: HEADLAMP_SELECTOR };
    const probe = {
        httpGet: { path: "/", port: 4466, scheme: "HTTP" },
        initialDelaySeconds: 30,
        timeoutSeconds: 30,
    };
    const admin = p.headlampAdmin
        ? [
            serviceAccount(a, HEADLAMP_ADMIN, ns),
            clusterRoleBinding(a, HEADLAMP_ADMIN, "cluster-admin", { name: HEADLAMP_ADMIN, namespace: ns }),
        ]
        : [];
    return [
        // The pod's own identity, bound to nothing: with -in-cluster every API request Headlamp makes
        // carries the signed-in user's token, so the UI grants nobody more than their own RBAC.
        { apiVersion: "v1", kind: "ServiceAccount", metadata: meta(a, "headlamp", ns, l) },
        {
            apiVersion: "v1",
            kind: "Service",
            metadata: meta(a, "headlamp", ns, l),
            spec: {
                type: "ClusterIP",
                selector: HEADLAMP_SELECTOR,
                ports: [{ name: "http", port: 80, protocol: "TCP", targetPort: 4466 }],
            },
        },
        {
            apiVersion: "apps/v1",
            kind: "Deployment",
            metadata: meta(a, "headlamp", ns, l),
            spec: {
                replicas: 1,
                selector: { matchLabels: HEADLAMP_SELECTOR },
                template: {
                    metadata: { labels: labels(a, HEADLAMP_SELECTOR) },
                    spec: {
                        serviceAccountName: "headlamp",
                        nodeSelector: { "kubernetes.io/os": "linux" },
                        containers: [{
                            name: "headlamp",
                            image: p.images.headlamp,
                            imagePullPolicy: "IfNotPresent",
                            args: ["-in-cluster", "-plugins-dir=/headlamp/plugins"],
                            ports: [{ name: "http", containerPort: 4466, protocol: "TCP" }],
                            readinessProbe: probe,
                            livenessProbe: probe,
                            // The chart's defaults (uid 100 / gid 101 of the image's user).
                            securityContext: {
                                ...RESTRICTED_CONTAINER,
                                privileged: false,
                                runAsNonRoot: true,
                                runAsUser: 100,
                                runAsGroup: 101,
                            },
                        }],
                    },
                },
            },
        },
        ...admin,
    ];
}

// ---------------------------------------------------------------------------------------------

const RENDERERS: Record<AddonName, (p: AddonParams) => K8sObject[]> = {
    "coredns": corednsObjects,
    "metrics-server": metricsServerObjects,
    "headlamp": headlampObjects,
};

const IMAGE_PARAM: Record<AddonName, keyof AddonParams["images"]> = {
    "coredns": "coredns",
    "metrics-server": "metricsServer",
    "headlamp": "headlamp",
};

const DNS_LABEL = "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?";
const DOMAIN = new RegExp(`^${DNS_LABEL}(\\.${DNS_LABEL})*$`);

function isIp(text: string): boolean {
    return ipaddr.IPv4.isValidFourPartDecimal(text) || ipaddr.IPv6.isValid(text);
}

/** A forward target: IP, IP:port, [IPv6]:port, with an optional dns:// or tls:// scheme, or an absolute path. */
function isUpstream(text: string): boolean {
    if (/^\/[^\s{}#;"']+$/.test(text)) return true;
    const hostPort = text.replace(/^(dns|tls):\/\//, "");
    if (isIp(hostPort)) return true;
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(hostPort);
    return !!m && isIp(m[1] ?? m[2]) && Number(m[3]) >= 1 && Number(m[3]) <= 65535;
}

/** Every problem with the parameters, each naming its field; empty when they are usable. */
export function validateAddonParams(p: AddonParams): string[] {
    const problems: string[] = [];
    const enabled = p.enabled ?? [];
    for (const name of enabled) {
        if (!ADDON_NAMES.includes(name)) problems.push(`enabled: unknown add-on "${name}" (known: ${ADDON_NAMES.join(", ")})`);
    }
    const on = (name: AddonName) => enabled.includes(name);
    for (const name of ADDON_NAMES.filter(on)) {
        const key = IMAGE_PARAM[name];
        const image = p.images?.[key];
        if (typeof image !== "string" || !/^[^\s]+$/.test(image)) {
            problems.push(`images.${key}: an image reference such as registry/name:tag is required for ${name}`);
        }
    }
    if (on("coredns")) {
        if (!ipaddr.IPv4.isValidFourPartDecimal(p.clusterDns ?? "") && !ipaddr.IPv6.isValid(p.clusterDns ?? "")) {
            problems.push(`clusterDns: "${p.clusterDns}" is not an IP address`);
        }
        if (typeof p.clusterDomain !== "string" || p.clusterDomain.length > 253 || !DOMAIN.test(p.clusterDomain)) {
            problems.push(`clusterDomain: "${p.clusterDomain}" is not a lower-case DNS name like cluster.local`);
        }
        const upstreams = p.upstreamDns ?? [];
        if (upstreams.length > 15) problems.push(`upstreamDns: CoreDNS forwards to at most 15 upstreams, got ${upstreams.length}`);
        for (const u of upstreams) {
            if (!isUpstream(u)) problems.push(`upstreamDns: "${u}" is neither an IP[:port] (optionally dns:// or tls://) nor an absolute resolv.conf path`);
        }
        const replicas = p.corednsReplicas;
        if (replicas !== undefined && (!Number.isInteger(replicas) || replicas < 1)) {
            problems.push(`corednsReplicas: must be a whole number >= 1, got ${replicas}`);
        }
    }
    if (on("metrics-server") && typeof p.images?.metricsServer === "string") {
        const tag = /:v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+@][^/]*)?$/.exec(p.images.metricsServer);
        if (tag && `${tag[1]}.${tag[2]}` !== METRICS_SERVER_MANIFEST_VERSION) {
            problems.push(`images.metricsServer: the manifest follows metrics-server v${METRICS_SERVER_MANIFEST_VERSION}.x; ` +
                `review it against the v${tag[1]}.${tag[2]} release's components.yaml before changing the tag`);
        }
    }
    return problems;
}

/**
 * One multi-document YAML per enabled add-on, in the order of ADDON_NAMES. Throws one error listing
 * every problem with the parameters.
 */
export function renderAddonManifests(p: AddonParams): AddonManifest[] {
    const problems = validateAddonParams(p);
    if (problems.length) throw new Error(`invalid add-on parameters:\n  - ${problems.join("\n  - ")}`);
    return ADDON_NAMES
        .filter((name) => p.enabled.includes(name))
        .map((name) => ({
            name,
            yaml: RENDERERS[name](p).map((o) => stringify(o, { lineWidth: 0 })).join("---\n"),
        }));
}
