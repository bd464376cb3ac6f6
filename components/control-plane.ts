// ControlPlane: kube-apiserver, kube-controller-manager and kube-scheduler on every master, one
// master at a time behind health gates; then what the API needs before nodes join.
import * as pulumi from "@pulumi/pulumi";
import { ClusterSpec } from "../spec/types";
import { ArtifactKey, artifactsFor } from "../spec/artifacts";
import { digestOf, HostTarget, installArtifact, putFiles, runScript, sha256, systemdService, waitHealthy } from "../host/remote";
import {
    apiserverReadyCheck, CONTROL_PLANE, controllerManagerHealthCheck, localKubectl, renderApiserverUnit, renderAuditPolicy,
    renderAuthenticationConfig, renderControllerManagerUnit, renderSchedulerConfig, renderSchedulerUnit, schedulerHealthCheck,
} from "../render/control-plane";
import { renderBootstrapManifests } from "../render/bootstrap";
import { ENCRYPTION_CONFIG, ETCD_PKI_DIR, KUBECONFIG, PKI_DIR } from "../render/paths";
import { HostFile } from "../render/types";
import { HostContexts } from "./context";

export interface ControlPlaneArgs {
    spec: ClusterSpec;
    hosts: HostContexts;
    /** Bootstrap token parts, from the CertificateAuthority (secret). */
    bootstrapToken: pulumi.Output<string>;
    /** The etcd health gates: no apiserver starts before etcd is healthy. */
    etcdReady: pulumi.Resource[];
}

const pki = (f: string) => `${PKI_DIR}/${f}`;
/** The files each component reads, from kubeadm's layout: a change restarts exactly its readers. */
export const CONTROL_PLANE_INPUTS = {
    apiserver: [pki("ca.crt"), pki("apiserver.crt"), pki("apiserver.key"), pki("apiserver-etcd-client.crt"), pki("apiserver-etcd-client.key"),
        pki("apiserver-kubelet-client.crt"), pki("apiserver-kubelet-client.key"), pki("front-proxy-ca.crt"), pki("front-proxy-client.crt"),
        pki("front-proxy-client.key"), pki("sa.pub"), pki("sa.key"), `${ETCD_PKI_DIR}/ca.crt`, ENCRYPTION_CONFIG],
    controllerManager: [KUBECONFIG.controllerManager, pki("ca.crt"), pki("ca.key"), pki("front-proxy-ca.crt"), pki("sa.key")],
    scheduler: [KUBECONFIG.scheduler],
};

export class ControlPlane extends pulumi.ComponentResource {
    /** Every master's apiserver, controller-manager and scheduler healthy, bootstrap RBAC in place. */
    readonly ready: pulumi.Resource[];

    constructor(name: string, args: ControlPlaneArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kubeha:controlplane:ControlPlane", name, {}, opts);
        const { spec, hosts } = args;
        const child = { parent: this };
        const artifacts = artifactsFor(spec);
        const binaries: ArtifactKey[] = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"];
        const configFiles: HostFile[] = [
            { path: CONTROL_PLANE.auditPolicy, content: renderAuditPolicy(), mode: "0600", secret: false },
            { path: CONTROL_PLANE.authenticationConfig, content: renderAuthenticationConfig(), mode: "0600", secret: false },
            { path: CONTROL_PLANE.schedulerConfig, content: renderSchedulerConfig(), mode: "0600", secret: false },
        ];
        const configDigest = (path: string) => sha256(configFiles.find((f) => f.path === path)!.content);
        const version = (key: ArtifactKey) => { const a = artifacts.find((x) => x.key === key)!; return a.sha256 ?? a.version; };

        // The previous master's gate for each component: restarts roll one master at a time.
        const last: Record<"apiserver" | "controllerManager" | "scheduler", pulumi.Resource | undefined> = { apiserver: undefined, controllerManager: undefined, scheduler: undefined };
        const gates: pulumi.Resource[] = [];
        const apiserverGates: pulumi.Resource[] = [];
        for (const m of spec.masters) {
            const ctx = hosts[m.name];
            const res = (suffix: string) => `${name}-${m.name}-${suffix}`;
            const installs = binaries.map((key) => installArtifact(res(`${key}-binary`), ctx.target, artifacts.find((a) => a.key === key)!, spec.binarySource, { ...child, dependsOn: [ctx.base] }));
            const config = putFiles(res("config"), ctx.target, configFiles, child);
            const prepared = [...installs, config, ctx.pkiFiles];

            const service = (component: keyof typeof last, unit: string, content: string, inputs: pulumi.Input<string>[], check: string, after: pulumi.Resource[]) => {
                const digest = pulumi.all([sha256(content), ...inputs]).apply((d) => sha256(d.join()));
                const start = systemdService(res(component), ctx.target, { unit, content, inputs: [digest] },
                    { ...child, dependsOn: [...prepared, ...after, ...(last[component] ? [last[component]!] : [])] });
                const gate = waitHealthy(res(`${component}-healthy`), ctx.target, { what: unit.replace(".service", ""), check, timeoutSeconds: 180, rerunOn: [digest] },
                    { ...child, dependsOn: [start] });
                last[component] = gate;
                gates.push(gate);
                return gate;
            };
            const apiserver = service("apiserver", CONTROL_PLANE.apiserverUnit, renderApiserverUnit(spec, m),
                [digestOf(ctx.pki, CONTROL_PLANE_INPUTS.apiserver), configDigest(CONTROL_PLANE.auditPolicy), configDigest(CONTROL_PLANE.authenticationConfig), version("kube-apiserver")],
                apiserverReadyCheck(spec), args.etcdReady);
            apiserverGates.push(apiserver);
            service("controllerManager", CONTROL_PLANE.controllerManagerUnit, renderControllerManagerUnit(spec),
                [digestOf(ctx.pki, CONTROL_PLANE_INPUTS.controllerManager), version("kube-controller-manager")], controllerManagerHealthCheck, [apiserver]);
            service("scheduler", CONTROL_PLANE.schedulerUnit, renderSchedulerUnit(spec),
                [digestOf(ctx.pki, CONTROL_PLANE_INPUTS.scheduler), configDigest(CONTROL_PLANE.schedulerConfig), version("kube-scheduler")], schedulerHealthCheck, [apiserver]);
        }

        // Once the first apiserver answers: TLS-bootstrap token and RBAC, through its local port.
        const first: HostTarget = hosts[spec.masters[0].name].target;
        const manifests = args.bootstrapToken.apply((t) => {
            const [id, secret] = t.split(".");
            return renderBootstrapManifests(id, secret);
        });
        const bootstrap = runScript(`${name}-bootstrap-rbac`, first, {
            script: `${localKubectl(spec)} apply --server-side --force-conflicts -f -`,
            stdin: manifests,
            rerunOn: [manifests.apply(sha256)],
        }, { ...child, dependsOn: [apiserverGates[0]] });

        this.ready = [...gates, bootstrap];
        this.registerOutputs({});
    }
}
