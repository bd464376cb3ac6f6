// Cluster: the whole topology, wired in the seed's order. Each step is a component of its own.
import * as pulumi from "@pulumi/pulumi";
import { ClusterSpec } from "../spec/types";
import { CertificateAuthority } from "./certificate-authority";
import { hostTarget, HostTarget, putFiles } from "../host/remote";
import { renderKubeconfig } from "../render/kubeconfig";
import { certificatesFor } from "../pki/certlist";
import { HostContexts } from "./context";
import { EtcdCluster } from "./etcd-cluster";
import { ControlPlane } from "./control-plane";
import { ApiLoadBalancer } from "./api-load-balancer";
import { hostStateScript, runScript, UPLOAD_DIR, waitHealthy } from "../host/remote";
import { PKI_DIR, STATE_DIR } from "../render/paths";
import { FlannelNetwork } from "./flannel-network";
import { WorkerPool } from "./worker-pool";
import { Addons } from "./addons";
import { nodeHosts } from "../render/node";

export interface ClusterArgs {
    spec: ClusterSpec;
    /** SSH private key (secret); when absent the ssh-agent at SSH_AUTH_SOCK is used. */
    sshPrivateKey?: pulumi.Input<string>;
}

export class Cluster extends pulumi.ComponentResource {
    readonly pki: CertificateAuthority;
    /** Admin kubeconfig through the API endpoint (secret). */
    readonly kubeconfig: pulumi.Output<string>;
    readonly apiEndpoint: string;
    readonly clusterCaCert: pulumi.Output<string>;
    /** Per host: where kubeha connects, and the PKI files it put there. */
    readonly hosts: HostContexts;
    readonly etcd: EtcdCluster;
    readonly controlPlane: ControlPlane;
    readonly loadBalancer?: ApiLoadBalancer;
    /** The API answers /readyz at the endpoint every client uses. */
    readonly apiReady: pulumi.Resource;
    readonly network: FlannelNetwork;
    readonly workers?: WorkerPool;
    readonly addons?: Addons;

    constructor(name: string, args: ClusterArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kubeha:index:Cluster", name, {}, opts);
        const { spec } = args;

        // 1. Certificates, keys, tokens.
        this.pki = new CertificateAuthority(`${name}-pki`, { spec }, { parent: this });

        // 2. Put each host's share of the PKI on it, all hosts in parallel.
        this.hosts = Object.fromEntries(spec.hosts.map((host) => {
            const target: HostTarget = hostTarget(spec, host, args.sshPrivateKey);
            // Created first, deleted last: kubeha's own state directory (download/upload caches, markers).
            const state = runScript(`${name}-${host.name}-state`, target, {
                script: hostStateScript(spec.ssh.user), rerunOn: [],
                delete: `rm -rf ${STATE_DIR} ${UPLOAD_DIR} /usr/local/lib/kubeha`,
            }, { parent: this });
            const pki = this.pki.filesFor(spec, host.name);
            const pkiFiles = putFiles(`${name}-${host.name}-pki`, target, pki, { parent: this, dependsOn: [state] });
            return [host.name, { target, pki, pkiFiles, base: state }];
        }));

        // 3. etcd on the masters, then the control plane behind it.
        this.etcd = new EtcdCluster(`${name}-etcd`, { spec, hosts: this.hosts }, { parent: this });
        this.controlPlane = new ControlPlane(`${name}-control-plane`, {
            spec, hosts: this.hosts, bootstrapToken: this.pki.bootstrapToken, etcdReady: this.etcd.ready,
        }, { parent: this });

        // 4. The VIP in front of the apiservers (independent of etcd; its check tracks their readiness).
        if (spec.loadBalancers.length > 0) {
            this.loadBalancer = new ApiLoadBalancer(`${name}-lb`, { spec, hosts: this.hosts }, { parent: this });
        }

        // 5. Nothing that uses the endpoint runs before it answers.
        const first = this.hosts[spec.masters[0].name];
        this.apiReady = waitHealthy(`${name}-api-endpoint-ready`, first.target, {
            what: `API endpoint ${spec.apiEndpoint.url}/readyz`,
            check: `curl -fsS --max-time 3 --cacert ${PKI_DIR}/ca.crt ${spec.apiEndpoint.url}/readyz`,
            timeoutSeconds: 120, rerunOn: [spec.apiEndpoint.url],
        }, { parent: this, dependsOn: [...this.controlPlane.ready, ...(this.loadBalancer?.ready ?? [])] });

        // 6. The pod network on every master and node, then the nodes, then the add-ons.
        this.network = new FlannelNetwork(`${name}-network`, { spec, hosts: this.hosts, etcdReady: [...this.etcd.ready, this.etcd.auth] }, { parent: this });
        if (nodeHosts(spec).length > 0) {
            this.workers = new WorkerPool(`${name}-nodes`, {
                spec, hosts: this.hosts, networkReady: this.network.ready, apiReady: [this.apiReady],
                clusterCaCert: this.pki.caCerts.ca,
                adminCertPem: this.pki.material.apply((m) => m.certs.admin.certPem),
                adminKeyPem: pulumi.secret(this.pki.material.apply((m) => m.certs.admin.keyPem)),
            }, { parent: this });
            if (spec.addons.enabled.length > 0) {
                this.addons = new Addons(`${name}-addons`, { spec, hosts: this.hosts, nodesReady: Object.values(this.workers.ready) }, { parent: this });
            }
        }

        const admin = certificatesFor(spec).find((c) => c.name === "admin")!;
        this.kubeconfig = pulumi.secret(this.pki.material.apply((m) => renderKubeconfig({
            clusterName: spec.clusterName, server: spec.apiEndpoint.url, caCertPem: m.cas.ca.certPem,
            user: admin.commonName, clientCertPem: m.certs.admin.certPem, clientKeyPem: m.certs.admin.keyPem,
        })));
        this.apiEndpoint = spec.apiEndpoint.url;
        this.clusterCaCert = this.pki.caCerts.ca;
        this.registerOutputs({ kubeconfig: this.kubeconfig, apiEndpoint: this.apiEndpoint, clusterCaCert: this.clusterCaCert });
    }
}
