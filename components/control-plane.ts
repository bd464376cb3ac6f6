// ControlPlane: kube-apiserver, kube-controller-manager and kube-scheduler on every master. A change
// rolls one master at a time, each component behind its health gate (the apiserver's /readyz
// before its controller-manager and scheduler, and all three before the next master); then what
// the API needs before nodes join.
import * as pulumi from "@pulumi/pulumi";
import { ClusterSpec } from "../spec/types";
import { lbDrainScripts } from "../render/loadbalancer";
import { ArtifactKey, artifactsFor } from "../spec/artifacts";
import { artifactBinaries, HostGroup, hostManifest, HostScript, sha256, unit } from "../host/group";
import {
    apiserverReadyCheck, CONTROL_PLANE, controllerManagerHealthCheck, localKubectl, renderApiserverUnit, renderAuditPolicy,
    renderAuthenticationConfig, renderControllerManagerUnit, renderSchedulerConfig, renderSchedulerUnit, schedulerHealthCheck,
} from "../render/control-plane";
import { renderBootstrapManifests } from "../render/bootstrap";
import { BIN_DIR, ENCRYPTION_CONFIG, ETCD_PKI_DIR, KUBECONFIG, PKI_DIR } from "../render/paths";
import { HostFile } from "../render/types";
import { HostContexts, pickPki, unitFile, unitPath } from "./context";

export interface ControlPlaneArgs {
    spec: ClusterSpec;
    hosts: HostContexts;
    /** Bootstrap token parts, from the CertificateAuthority (secret). */
    bootstrapToken: pulumi.Output<string>;
    /** etcd is healthy: no apiserver starts before. */
    etcdReady: pulumi.Resource;
}

const pki = (f: string) => `${PKI_DIR}/${f}`;
/** The files each component reads, from kubeadm's layout: a change restarts exactly its readers. */
export const CONTROL_PLANE_INPUTS = {
    apiserver: [pki("ca.crt"), pki("apiserver.crt"), pki("apiserver.key"), pki("apiserver-etcd-client.crt"), pki("apiserver-etcd-client.key"),
        pki("apiserver-kubelet-client.crt"), pki("apiserver-kubelet-client.key"), pki("front-proxy-ca.crt"), pki("front-proxy-client.crt"),
        pki("front-proxy-client.key"), pki("sa.pub"), pki("sa.key"), `${ETCD_PKI_DIR}/ca.crt`, ENCRYPTION_CONFIG,
        CONTROL_PLANE.auditPolicy, CONTROL_PLANE.authenticationConfig],
    controllerManager: [KUBECONFIG.controllerManager, pki("ca.crt"), pki("ca.key"), pki("front-proxy-ca.crt"), pki("sa.key")],
    scheduler: [KUBECONFIG.scheduler, CONTROL_PLANE.schedulerConfig],
};
const CONFIG_FILES: string[] = [CONTROL_PLANE.auditPolicy, CONTROL_PLANE.authenticationConfig, CONTROL_PLANE.schedulerConfig];
/** PKI the masters' control-plane group writes: what the components read, and kubeha's admin kubeconfig. */
const CONTROL_PLANE_PKI = [...new Set([...CONTROL_PLANE_INPUTS.apiserver, ...CONTROL_PLANE_INPUTS.controllerManager, ...CONTROL_PLANE_INPUTS.scheduler, KUBECONFIG.admin])]
    .filter((p) => !CONFIG_FILES.includes(p));

export class ControlPlane extends pulumi.ComponentResource {
    /** Every master's apiserver, controller-manager and scheduler converged and healthy. */
    readonly masters: HostGroup;
    /** TLS-bootstrap token and RBAC, applied through the first apiserver. */
    readonly bootstrap: HostScript;

    constructor(name: string, args: ControlPlaneArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kubeha:controlplane:ControlPlane", name, {}, opts);
        const { spec, hosts } = args;
        const artifacts = artifactsFor(spec);
        const binaries = (["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"] as ArtifactKey[])
            .flatMap((key) => artifactBinaries(artifacts.find((a) => a.key === key)!, spec.binarySource));
        const configFiles: HostFile[] = [
            { path: CONTROL_PLANE.auditPolicy, content: renderAuditPolicy(), mode: "0600", secret: false },
            { path: CONTROL_PLANE.authenticationConfig, content: renderAuthenticationConfig(), mode: "0600", secret: false },
            { path: CONTROL_PLANE.schedulerConfig, content: renderSchedulerConfig(), mode: "0600", secret: false },
        ];
        const members = spec.masters.map((m) => hosts[m.name].pki.apply((files) => hostManifest(m, {
            files: [
                ...pickPki(m.name, files, CONTROL_PLANE_PKI),
                ...configFiles,
                unitFile(CONTROL_PLANE.apiserverUnit, renderApiserverUnit(spec, m)),
                unitFile(CONTROL_PLANE.controllerManagerUnit, renderControllerManagerUnit(spec)),
                unitFile(CONTROL_PLANE.schedulerUnit, renderSchedulerUnit(spec)),
            ],
            binaries,
            steps: [
                unit({
                    name: CONTROL_PLANE.apiserverUnit,
                    reads: [unitPath(CONTROL_PLANE.apiserverUnit), ...CONTROL_PLANE_INPUTS.apiserver, `${BIN_DIR}/kube-apiserver`],
                    health: { what: "kube-apiserver /readyz", check: apiserverReadyCheck(spec), timeoutSeconds: 180 },
                    // Out of the lb hosts' upstreams while it restarts: a starting apiserver accepts
                    // connections before it can answer them.
                    ...(spec.loadBalancers.length && spec.masters.length > 1 ? {
                        drain: { what: "the lb hosts' API proxy", on: spec.loadBalancers.map((h) => ({ name: h.name, address: h.ip })), ...lbDrainScripts(spec, m) },
                    } : {}),
                }),
                unit({
                    name: CONTROL_PLANE.controllerManagerUnit,
                    reads: [unitPath(CONTROL_PLANE.controllerManagerUnit), ...CONTROL_PLANE_INPUTS.controllerManager, `${BIN_DIR}/kube-controller-manager`],
                    health: { what: "kube-controller-manager /healthz", check: controllerManagerHealthCheck, timeoutSeconds: 120 },
                }),
                unit({
                    name: CONTROL_PLANE.schedulerUnit,
                    reads: [unitPath(CONTROL_PLANE.schedulerUnit), ...CONTROL_PLANE_INPUTS.scheduler, `${BIN_DIR}/kube-scheduler`],
                    health: { what: "kube-scheduler /healthz", check: schedulerHealthCheck, timeoutSeconds: 120 },
                }),
            ],
        })));
        this.masters = new HostGroup(`${name}-masters`, { group: "control-plane", members: pulumi.all(members), roll: { batch: 1 } },
            { parent: this, dependsOn: [args.etcdReady] });

        // Once the apiservers answer: TLS-bootstrap token and RBAC, through the first one's local port.
        const manifests = args.bootstrapToken.apply((t) => {
            const [id, secret] = t.split(".");
            return renderBootstrapManifests(id, secret);
        });
        this.bootstrap = new HostScript(`${name}-bootstrap-rbac`, {
            what: "TLS-bootstrap token and RBAC", host: spec.masters[0],
            script: `${localKubectl(spec)} apply --server-side --force-conflicts -f - >/dev/null\necho "applied the bootstrap token and RBAC"`,
            stdin: manifests,
            rerunOn: [manifests.apply(sha256)],
        }, { parent: this, dependsOn: [this.masters] });
        this.registerOutputs({});
    }
}
