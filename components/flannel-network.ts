// FlannelNetwork: the pod network. The network config goes into etcd (v3 API) once etcd is
// healthy; then flanneld runs on every master and node with its etcd client certificate, and
// writes /run/flannel/subnet.env, which the flannel CNI plugin reads for every pod.
import * as pulumi from "@pulumi/pulumi";
import { ClusterSpec } from "../spec/types";
import { artifactsFor } from "../spec/artifacts";
import { digestOf, installArtifact, runScript, sha256, systemdService, waitHealthy } from "../host/remote";
import {
    FLANNEL, flannelConfigPutCommand, flanneldEtcdClientFiles, flannelHosts, renderFlanneldUnit, renderFlannelNetworkConfig,
} from "../render/flannel";
import { FLANNEL_SUBNET_FILE } from "../render/paths";
import { HostContexts } from "./context";

export interface FlannelNetworkArgs {
    spec: ClusterSpec;
    hosts: HostContexts;
    /** The etcd health gates: the network config is written once etcd is healthy. */
    etcdReady: pulumi.Resource[];
}

/** The network interfaces flanneld and the CNI bridge create: removed with flanneld on destroy. */
export const FLANNEL_LINKS = ["flannel.1", "flannel-wg", "cni0"];

export class FlannelNetwork extends pulumi.ComponentResource {
    /** Per host: flanneld holds a subnet lease and wrote the subnet file. */
    readonly ready: Record<string, pulumi.Resource>;

    constructor(name: string, args: FlannelNetworkArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kubeha:network:FlannelNetwork", name, {}, opts);
        const { spec, hosts } = args;
        const child = { parent: this };
        if (spec.network.flannelMode !== "etcd") {
            throw new Error("kubeha:flannelMode: kube-subnet-mgr is rendered (npm run render) but not deployed yet: flanneld's API client certificate and kubeconfig are missing from the PKI; use flannelMode=etcd");
        }
        const artifact = artifactsFor(spec).find((a) => a.key === "flannel")!;

        // 1. The network config, through the v3 API (etcd 3.6 has no v2 API), from the first master.
        const netConfig = renderFlannelNetworkConfig(spec);
        const first = hosts[spec.masters[0].name];
        const config = runScript(`${name}-config`, first.target, {
            script: `${flannelConfigPutCommand(spec)} >/dev/null`,
            stdin: netConfig,
            rerunOn: [sha256(netConfig), flannelConfigPutCommand(spec)],
        }, { ...child, dependsOn: args.etcdReady });

        // 2. flanneld on every master and node, all hosts in parallel.
        const etcdFiles = flanneldEtcdClientFiles();
        this.ready = Object.fromEntries(flannelHosts(spec).map((h) => {
            const ctx = hosts[h.name];
            const res = (s: string) => `${name}-${h.name}-${s}`;
            const install = installArtifact(res("flanneld-binary"), ctx.target, artifact, spec.binarySource, { ...child, dependsOn: [ctx.base] });
            const unit = renderFlanneldUnit(spec, h);
            const digest = pulumi.all([sha256(unit), digestOf(ctx.pki, [etcdFiles.ca, etcdFiles.cert, etcdFiles.key]), artifact.sha256 ?? artifact.version])
                .apply((d) => sha256(d.join()));
            const service = systemdService(res("flanneld"), ctx.target, {
                unit: FLANNEL.unit, content: unit, inputs: [digest],
                removeOnDelete: ["/run/flannel"],
                cleanupOnDelete: FLANNEL_LINKS.map((l) => `ip link delete ${l} 2>/dev/null || true`).join("\n"),
            }, { ...child, dependsOn: [install, ctx.pkiFiles, config] });
            const ready = waitHealthy(res("flanneld-ready"), ctx.target, {
                what: "flanneld (subnet lease and subnet file)",
                check: `systemctl is-active -q ${FLANNEL.unit} && test -s ${FLANNEL_SUBNET_FILE}`,
                timeoutSeconds: 120, rerunOn: [digest],
            }, { ...child, dependsOn: [service] });
            return [h.name, ready];
        }));
        this.registerOutputs({});
    }
}
