// FlannelNetwork: the pod network. The network config goes into etcd (v3 API) once etcd is
// healthy and its access control is on; then flanneld runs on every master and node with its etcd
// client certificate, and writes /run/flannel/subnet.env, which the flannel CNI plugin reads for
// every pod. A node's flanneld belongs to the node (WorkerPool), so that it goes after the node
// was drained; this component runs it on the masters that are not nodes.
import * as pulumi from "@pulumi/pulumi";
import { ClusterSpec, Host } from "../spec/types";
import { artifactsFor } from "../spec/artifacts";
import { artifactBinaries, HostBinary, HostGroup, hostManifest, HostScript, sha256, StepSpec, unit } from "../host/group";
import {
    FLANNEL, flannelConfigPutCommand, flanneldEtcdClientFiles, flannelHosts, renderFlanneldUnit, renderFlannelNetworkConfig,
} from "../render/flannel";
import { BIN_DIR, FLANNEL_SUBNET_FILE } from "../render/paths";
import { HostFile } from "../render/types";
import { HostContexts, pickPki, unitFile, unitPath } from "./context";

export interface FlannelNetworkArgs {
    spec: ClusterSpec;
    hosts: HostContexts;
    /** etcd is healthy and its users and roles are in place. */
    etcdReady: pulumi.Resource[];
}

/** The network interfaces flanneld and the CNI bridge create: removed with flanneld. */
export const FLANNEL_LINKS = ["flannel.1", "flannel-wg", "cni0"];

/** What flanneld needs on a host: its etcd client certificate, unit, binary, and the step that runs it. */
export function flanneldOnHost(spec: ClusterSpec, h: Host, pki: HostFile[]): { files: HostFile[]; binaries: HostBinary[]; step: StepSpec } {
    const etcd = flanneldEtcdClientFiles();
    const artifact = artifactsFor(spec).find((a) => a.key === "flannel")!;
    return {
        files: [...pickPki(h.name, pki, [etcd.ca, etcd.cert, etcd.key]), unitFile(FLANNEL.unit, renderFlanneldUnit(spec, h))],
        binaries: artifactBinaries(artifact, spec.binarySource),
        step: unit({
            name: FLANNEL.unit, reads: [unitPath(FLANNEL.unit), etcd.ca, etcd.cert, etcd.key, `${BIN_DIR}/flanneld`],
            health: { what: "flanneld (subnet lease and subnet file)", check: `systemctl is-active -q ${FLANNEL.unit} && test -s ${FLANNEL_SUBNET_FILE}`, timeoutSeconds: 120 },
            cleanup: FLANNEL_LINKS.map((l) => `ip link delete ${l} 2>/dev/null || true`).join("\n"),
            removeOnDelete: ["/run/flannel"],
        }),
    };
}

export class FlannelNetwork extends pulumi.ComponentResource {
    /** The network config is in etcd: flanneld may start. */
    readonly config: HostScript;
    /** flanneld on the masters that are not nodes. */
    readonly masters?: HostGroup;

    constructor(name: string, args: FlannelNetworkArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kubeha:network:FlannelNetwork", name, {}, opts);
        const { spec, hosts } = args;
        if (spec.network.flannelMode !== "etcd") {
            throw new Error("kubeha:flannelMode: kube-subnet-mgr is rendered (npm run render) but not deployed yet: flanneld's API client certificate and kubeconfig are missing from the PKI; use flannelMode=etcd");
        }
        // 1. The network config, through the v3 API (etcd 3.6 has no v2 API), from the first master.
        const netConfig = renderFlannelNetworkConfig(spec);
        this.config = new HostScript(`${name}-config`, {
            what: "flannel network config in etcd", host: spec.masters[0],
            script: `${flannelConfigPutCommand(spec)} >/dev/null`, stdin: netConfig,
            rerunOn: [sha256(netConfig), flannelConfigPutCommand(spec)],
        }, { parent: this, dependsOn: args.etcdReady });

        // 2. flanneld on the masters that are not nodes, all at once (the nodes run theirs).
        const masters = flannelHosts(spec).filter((h) => !h.roles.includes("worker"));
        if (masters.length > 0) {
            const members = masters.map((m) => hosts[m.name].pki.apply((pki) => {
                const f = flanneldOnHost(spec, m, pki);
                return hostManifest(m, { files: f.files, binaries: f.binaries, steps: [f.step] });
            }));
            this.masters = new HostGroup(`${name}-masters`, { group: "master-network", members: pulumi.all(members), roll: { batch: 1 } },
                { parent: this, dependsOn: [this.config] });
        }
        this.registerOutputs({});
    }
}
