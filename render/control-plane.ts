// kube-apiserver, kube-controller-manager and kube-scheduler on every master, with kubeadm's paths.
import { stringify } from "yaml";
import { ClusterSpec, Host } from "../spec/types";
import { Args, argsToCommandLine, mergeArgs, renderUnit } from "./systemd";
import { BIN_DIR, ENCRYPTION_CONFIG, ETCD_PKI_DIR, KUBE_DIR, KUBECONFIG, PKI_DIR } from "./paths";
import { etcdEndpoints } from "./etcd";

export const CONTROL_PLANE = {
    apiserverUnit: "kube-apiserver.service",
    controllerManagerUnit: "kube-controller-manager.service",
    schedulerUnit: "kube-scheduler.service",
    auditPolicy: `${KUBE_DIR}/audit-policy.yaml`,
    authenticationConfig: `${KUBE_DIR}/authentication-config.yaml`,
    schedulerConfig: `${KUBE_DIR}/kube-scheduler.yaml`,
    auditLog: "/var/log/kubernetes/audit/audit.log",
    controllerManagerPort: 10257,
    schedulerPort: 10259,
} as const;

const pki = (f: string) => `${PKI_DIR}/${f}`;

export function apiserverArgs(spec: ClusterSpec, master: Host): Args {
    const c = spec.controlPlane;
    return mergeArgs({
        "advertise-address": master.ip,
        "bind-address": "0.0.0.0",
        "secure-port": spec.ports.apiserver,
        "etcd-servers": etcdEndpoints(spec),
        "etcd-cafile": `${ETCD_PKI_DIR}/ca.crt`,
        "etcd-certfile": pki("apiserver-etcd-client.crt"),
        "etcd-keyfile": pki("apiserver-etcd-client.key"),
        "tls-cert-file": pki("apiserver.crt"),
        "tls-private-key-file": pki("apiserver.key"),
        "client-ca-file": pki("ca.crt"),
        "kubelet-client-certificate": pki("apiserver-kubelet-client.crt"),
        "kubelet-client-key": pki("apiserver-kubelet-client.key"),
        // Kubelets serve certificates signed by the cluster CA (serverTLSBootstrap, approved by kubeha).
        "kubelet-certificate-authority": pki("ca.crt"),
        "kubelet-preferred-address-types": "InternalIP,Hostname,ExternalIP",
        "authorization-mode": "Node,RBAC",
        "enable-admission-plugins": "NodeRestriction",
        "enable-bootstrap-token-auth": true,
        // Anonymous requests reach only the health endpoints (keepalived's check, load balancers).
        "authentication-config": CONTROL_PLANE.authenticationConfig,
        "service-account-issuer": `https://kubernetes.default.svc.${spec.network.clusterDomain}`,
        "service-account-key-file": pki("sa.pub"),
        "service-account-signing-key-file": pki("sa.key"),
        "service-cluster-ip-range": spec.network.serviceCidr,
        "service-node-port-range": `${spec.network.nodePortRange.from}-${spec.network.nodePortRange.to}`,
        "allow-privileged": true,
        "requestheader-client-ca-file": pki("front-proxy-ca.crt"),
        "requestheader-allowed-names": "front-proxy-client",
        "requestheader-username-headers": "X-Remote-User",
        "requestheader-group-headers": "X-Remote-Group",
        "requestheader-extra-headers-prefix": "X-Remote-Extra-",
        "proxy-client-cert-file": pki("front-proxy-client.crt"),
        "proxy-client-key-file": pki("front-proxy-client.key"),
        // Masters run no kube-proxy: the aggregator reaches extension APIs by endpoint, not by Service IP.
        "enable-aggregator-routing": true,
        "encryption-provider-config": ENCRYPTION_CONFIG,
        "audit-policy-file": CONTROL_PLANE.auditPolicy,
        "audit-log-path": CONTROL_PLANE.auditLog,
        "audit-log-maxage": c.auditLogMaxAgeDays,
        "audit-log-maxbackup": c.auditLogMaxBackups,
        "audit-log-maxsize": c.auditLogMaxSizeMb,
        "profiling": false,
        "tls-min-version": "VersionTLS12",
    }, c.apiserverExtraArgs);
}

export function controllerManagerArgs(spec: ClusterSpec): Args {
    return mergeArgs({
        "kubeconfig": KUBECONFIG.controllerManager,
        "authentication-kubeconfig": KUBECONFIG.controllerManager,
        "authorization-kubeconfig": KUBECONFIG.controllerManager,
        "bind-address": "127.0.0.1",
        "secure-port": CONTROL_PLANE.controllerManagerPort,
        "leader-elect": true,
        "client-ca-file": pki("ca.crt"),
        "requestheader-client-ca-file": pki("front-proxy-ca.crt"),
        "cluster-name": spec.clusterName,
        "cluster-signing-cert-file": pki("ca.crt"),
        "cluster-signing-key-file": pki("ca.key"),
        "cluster-signing-duration": `${spec.certificates.validityHours}h`,
        "controllers": "*,bootstrapsigner,tokencleaner",
        "use-service-account-credentials": true,
        "service-account-private-key-file": pki("sa.key"),
        "root-ca-file": pki("ca.crt"),
        "service-cluster-ip-range": spec.network.serviceCidr,
        "profiling": false,
    }, spec.controlPlane.controllerManagerExtraArgs);
}

export function schedulerArgs(spec: ClusterSpec): Args {
    return mergeArgs({
        "config": CONTROL_PLANE.schedulerConfig,
        "authentication-kubeconfig": KUBECONFIG.scheduler,
        "authorization-kubeconfig": KUBECONFIG.scheduler,
        "bind-address": "127.0.0.1",
        "secure-port": CONTROL_PLANE.schedulerPort,
        "profiling": false,
    }, spec.controlPlane.schedulerExtraArgs);
}

export function renderSchedulerConfig(): string {
    return stringify({
        apiVersion: "kubescheduler.config.k8s.io/v1",
        kind: "KubeSchedulerConfiguration",
        clientConnection: { kubeconfig: KUBECONFIG.scheduler },
        leaderElection: { leaderElect: true },
    });
}

export function renderAuthenticationConfig(): string {
    return stringify({
        apiVersion: "apiserver.config.k8s.io/v1",
        kind: "AuthenticationConfiguration",
        anonymous: { enabled: true, conditions: [{ path: "/livez" }, { path: "/readyz" }, { path: "/healthz" }] },
    });
}

export function renderAuditPolicy(): string {
    return stringify({
        apiVersion: "audit.k8s.io/v1",
        kind: "Policy",
        omitStages: ["RequestReceived"],
        rules: [
            { level: "None", nonResourceURLs: ["/healthz*", "/livez*", "/readyz*", "/version"] },
            { level: "None", users: ["system:kube-proxy"], verbs: ["watch"], resources: [{ group: "", resources: ["endpoints", "services"] }, { group: "discovery.k8s.io", resources: ["endpointslices"] }] },
            { level: "None", userGroups: ["system:nodes"], verbs: ["get"], resources: [{ group: "", resources: ["nodes", "nodes/status"] }] },
            { level: "None", users: ["system:kube-controller-manager", "system:kube-scheduler"], verbs: ["get", "update"], namespaces: ["kube-system"], resources: [{ group: "coordination.k8s.io", resources: ["leases"] }] },
            // Secrets, config maps and token reviews: who and when, never the payload.
            { level: "Metadata", resources: [{ group: "", resources: ["secrets", "configmaps", "serviceaccounts/token"] }, { group: "authentication.k8s.io", resources: ["tokenreviews"] }] },
            { level: "Metadata" },
        ],
    });
}

const DOCS = "https://kubernetes.io/docs/reference/command-line-tools-reference/";

export function renderApiserverUnit(spec: ClusterSpec, master: Host): string {
    return renderUnit({
        description: "Kubernetes API server (kubeha)",
        documentation: `${DOCS}kube-apiserver/`,
        after: ["network-online.target", "etcd.service"],
        execStartPre: [`/bin/mkdir -p ${CONTROL_PLANE.auditLog.replace(/\/[^/]+$/, "")}`],
        execStart: argsToCommandLine(`${BIN_DIR}/kube-apiserver`, apiserverArgs(spec, master)),
    });
}

export function renderControllerManagerUnit(spec: ClusterSpec): string {
    return renderUnit({
        description: "Kubernetes controller manager (kubeha)",
        documentation: `${DOCS}kube-controller-manager/`,
        after: ["network-online.target", CONTROL_PLANE.apiserverUnit],
        execStart: argsToCommandLine(`${BIN_DIR}/kube-controller-manager`, controllerManagerArgs(spec)),
    });
}

export function renderSchedulerUnit(spec: ClusterSpec): string {
    return renderUnit({
        description: "Kubernetes scheduler (kubeha)",
        documentation: `${DOCS}kube-scheduler/`,
        after: ["network-online.target", CONTROL_PLANE.apiserverUnit],
        execStart: argsToCommandLine(`${BIN_DIR}/kube-scheduler`, schedulerArgs(spec)),
    });
}

/** Health endpoints on the master itself; anonymous access is allowed to exactly these. */
export function apiserverReadyCheck(spec: ClusterSpec): string {
    return `curl -fsS --max-time 3 --cacert ${pki("ca.crt")} https://127.0.0.1:${spec.ports.apiserver}/readyz`;
}
export const controllerManagerHealthCheck = `curl -fsSk --max-time 3 https://127.0.0.1:${CONTROL_PLANE.controllerManagerPort}/healthz`;
export const schedulerHealthCheck = `curl -fsSk --max-time 3 https://127.0.0.1:${CONTROL_PLANE.schedulerPort}/healthz`;

/**
 * kubectl as kubeha runs it on the first master: admin credentials, the local apiserver (works
 * before the VIP does). `timeoutSeconds` bounds each request.
 */
export function localKubectl(spec: ClusterSpec, timeoutSeconds?: number): string {
    return `${BIN_DIR}/kubectl --kubeconfig=${KUBECONFIG.admin} --server=https://127.0.0.1:${spec.ports.apiserver}${timeoutSeconds ? ` --request-timeout=${timeoutSeconds}s` : ""}`;
}
