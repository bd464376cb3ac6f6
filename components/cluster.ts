// Cluster: the whole topology, wired in the seed's order. Each step is a component of its own.
import * as pulumi from "@pulumi/pulumi";
import { ClusterSpec, Host } from "../spec/types";
import { CertificateAuthority } from "./certificate-authority";
import { renderKubeconfig } from "../render/kubeconfig";
import { certificatesFor } from "../pki/certlist";
import { HostContexts } from "./context";
import { PreparedHosts } from "./host-preparation";
import { EtcdCluster } from "./etcd-cluster";
import { ControlPlane } from "./control-plane";
import { ApiLoadBalancer } from "./api-load-balancer";
import { HostScript } from "../host/group";
import { PKI_DIR } from "../render/paths";
import { FlannelNetwork } from "./flannel-network";
import { WorkerPool } from "./worker-pool";
import { Addons } from "./addons";
import { nodeHosts } from "../render/node";

export interface ClusterArgs {
    spec: ClusterSpec;
}

export class Cluster extends pulumi.ComponentResource {
    readonly pki: CertificateAuthority;
    /** Admin kubeconfig through the API endpoint (secret). */
    readonly kubeconfig: pulumi.Output<string>;
    readonly apiEndpoint: string;
    readonly clusterCaCert: pulumi.Output<string>;
    readonly hosts: HostContexts;
    readonly prepared: PreparedHosts;
    readonly etcd: EtcdCluster;
    readonly controlPlane: ControlPlane;
    readonly loadBalancer?: ApiLoadBalancer;
    /** The API answers /readyz at the endpoint every client uses. */
    readonly apiReady: HostScript;
    readonly network: FlannelNetwork;
    readonly workers?: WorkerPool;
    readonly addons?: Addons;

    constructor(name: string, args: ClusterArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kubeha:index:Cluster", name, {}, opts);
        const { spec } = args;
        const prepared = (hosts: Host[]) => hosts.map((h) => this.prepared.byHost[h.name]);

        // 1. Certificates, keys, tokens; each host's share of them.
        this.pki = new CertificateAuthority(`${name}-pki`, { spec }, { parent: this });
        this.hosts = Object.fromEntries(spec.hosts.map((host) => [host.name, { host, pki: this.pki.filesFor(spec, host.name) }]));

        // 2. Every host prepared (packages, kernel, swap, journald, resolver) and past its preflight.
        this.prepared = new PreparedHosts(`${name}-host`, { spec }, { parent: this });

        // 3. etcd on the masters, then the control plane behind it.
        this.etcd = new EtcdCluster(`${name}-etcd`, { spec, hosts: this.hosts, prepared: prepared(spec.masters) }, { parent: this });
        this.controlPlane = new ControlPlane(`${name}-control-plane`, {
            spec, hosts: this.hosts, bootstrapToken: this.pki.bootstrapToken, etcdReady: this.etcd.members,
        }, { parent: this });

        // 4. The VIP in front of the apiservers (independent of etcd; its gate is the API answering through it).
        if (spec.loadBalancers.length > 0) {
            this.loadBalancer = new ApiLoadBalancer(`${name}-lb`, { spec, hosts: this.hosts, prepared: prepared(spec.loadBalancers) }, { parent: this });
        }

        // 5. Nothing that uses the endpoint runs before it answers.
        const what = `API endpoint ${spec.apiEndpoint.url}/readyz`;
        this.apiReady = new HostScript(`${name}-api-endpoint-ready`, {
            what, host: spec.masters[0],
            gate: { what, check: `curl -fsS --max-time 3 --cacert ${PKI_DIR}/ca.crt ${spec.apiEndpoint.url}/readyz >/dev/null`, timeoutSeconds: 120 },
            rerunOn: [spec.apiEndpoint.url],
        }, { parent: this, dependsOn: [this.controlPlane.masters, ...(this.loadBalancer ? [this.loadBalancer.hosts] : [])] });

        // 6. The pod network on every master and node, then the nodes, then the add-ons.
        this.network = new FlannelNetwork(`${name}-network`, { spec, hosts: this.hosts, etcdReady: [this.etcd.auth] }, { parent: this });
        if (nodeHosts(spec).length > 0) {
            this.workers = new WorkerPool(`${name}-nodes`, {
                spec, hosts: this.hosts,
                ready: [this.network.config, this.apiReady, this.controlPlane.bootstrap, ...prepared(nodeHosts(spec))],
                clusterCaCert: this.pki.caCerts.ca,
                adminCertPem: this.pki.material.apply((m) => m.certs.admin.certPem),
                adminKeyPem: pulumi.secret(this.pki.material.apply((m) => m.certs.admin.keyPem)),
            }, { parent: this });
            if (spec.addons.enabled.length > 0) {
                this.addons = new Addons(`${name}-addons`, { spec, nodesReady: [this.workers.nodes, this.workers.servingCerts] }, { parent: this });
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
