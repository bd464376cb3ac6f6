// EtcdCluster: one etcd member per master. Binaries, certificates, unit -> start -> every member
// healthy; then etcd's own users and roles; snapshot backups on a timer. A change rolls member by
// member (the leader last), each restart only once the whole cluster is healthy and gated on it
// again, so two members are never down at once. At first start every member starts at once (they
// need each other for quorum).
import * as pulumi from "@pulumi/pulumi";
import { ClusterSpec } from "../spec/types";
import { artifactsFor } from "../spec/artifacts";
import { artifactBinaries, HostGroup, hostManifest, HostScript, sha256, unit } from "../host/group";
import { renderEtcdAuthScript } from "../render/etcd-auth";
import { ETCD, etcdClusterHealthCheck, etcdIsLeaderCheck, renderEtcdBackupScript, renderEtcdBackupUnits, renderEtcdUnit } from "../render/etcd";
import { BIN_DIR, ETCD_PKI_DIR } from "../render/paths";
import { HostContexts, pickPki, unitFile, unitPath } from "./context";

export interface EtcdClusterArgs {
    spec: ClusterSpec;
    hosts: HostContexts;
    /** The masters are prepared and passed their preflight. */
    prepared: pulumi.Resource[];
}

const pki = (f: string) => `${ETCD_PKI_DIR}/${f}`;
/** Files each member reads: a change to any of them restarts that member. */
export const ETCD_INPUTS = ["ca.crt", "server.crt", "server.key", "peer.crt", "peer.key"].map(pki);
/** The etcd group also writes the healthcheck client certificate its gates, backups and etcdctl use. */
const ETCD_PKI = [...ETCD_INPUTS, pki("healthcheck-client.crt"), pki("healthcheck-client.key")];

export class EtcdCluster extends pulumi.ComponentResource {
    /** Every member converged and the cluster healthy with a leader. */
    readonly members: HostGroup;
    /** Users, roles and authentication enabled (after the members). */
    readonly auth: HostScript;

    constructor(name: string, args: EtcdClusterArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kubeha:etcd:EtcdCluster", name, {}, opts);
        const { spec, hosts } = args;
        const artifact = artifactsFor(spec).find((a) => a.key === "etcd")!;
        const binaries = artifactBinaries(artifact, spec.binarySource);
        const backup = renderEtcdBackupUnits(spec);
        const health = { what: "etcd cluster (every member healthy, a leader elected)", check: etcdClusterHealthCheck(spec), timeoutSeconds: 300 };

        const members = spec.masters.map((m) => hosts[m.name].pki.apply((files) => hostManifest(m, {
            files: [
                ...pickPki(m.name, files, ETCD_PKI),
                unitFile(ETCD.unit, renderEtcdUnit(spec, m)),
                { path: ETCD.backupScript, content: renderEtcdBackupScript(spec), mode: "0755", secret: false },
                unitFile(ETCD.backupService, backup.service),
                unitFile(ETCD.backupTimer, backup.timer),
            ],
            binaries,
            steps: [
                unit({
                    name: ETCD.unit, reads: [unitPath(ETCD.unit), ...ETCD_INPUTS, `${BIN_DIR}/etcd`], health,
                    // `pulumi destroy` removes the member's data too, like `kubeadm reset`.
                    removeOnDelete: [spec.etcd.dataDir, spec.etcd.walDir],
                }),
                // The timer runs the script by path: a changed script needs no restart of the timer.
                unit({ name: ETCD.backupTimer, reads: [unitPath(ETCD.backupTimer), unitPath(ETCD.backupService)] }),
            ],
        })));
        this.members = new HostGroup(`${name}-members`, {
            group: "etcd",
            members: pulumi.all(members),
            roll: { batch: 1, lastIf: etcdIsLeaderCheck(spec), preGate: health },
        }, { parent: this, dependsOn: args.prepared });

        // Role-based access once the cluster is healthy: the flanneld certificate every node holds
        // reaches only flannel's prefix, never kube-apiserver's /registry (render/etcd-auth.ts).
        const authScript = renderEtcdAuthScript(spec);
        this.auth = new HostScript(`${name}-auth`, { what: "etcd users, roles and authentication", host: spec.masters[0], script: authScript, rerunOn: [sha256(authScript)] },
            { parent: this, dependsOn: [this.members] });
        this.registerOutputs({});
    }
}
