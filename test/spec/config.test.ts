import { strict as assert } from "node:assert";
import { ConfigError, loadClusterSpec, RawConfig } from "../../spec/config";
import { HA_RAW, SEED_RAW, specOf } from "../fixtures";

/** Loads and returns the problems, failing the test when the config is accepted. */
function problems(raw: RawConfig, opts = {}): string[] {
    try {
        loadClusterSpec(raw, opts);
    } catch (e) {
        if (e instanceof ConfigError) return e.problems;
        throw e;
    }
    assert.fail("config was accepted");
}

const seed = (o: RawConfig) => ({ ...SEED_RAW, ...o });

describe("stack config -> ClusterSpec", () => {
    it("loads the seed's cluster from Pulumi.dev.yaml", () => {
        const s = specOf(SEED_RAW);
        assert.deepEqual(s.masters.map((h) => h.name), ["k8s-master01", "k8s-master02", "k8s-master03"]);
        assert.deepEqual(s.workers.map((h) => h.ip), ["172.16.60.244", "172.16.60.245", "172.16.60.246"]);
        assert.deepEqual(s.loadBalancers.map((h) => h.name), ["k8s-ha01", "k8s-ha02"]);
        assert.equal(s.apiEndpoint.url, "https://172.16.60.250:8443");
        assert.equal(s.kubernetesServiceIp, "10.254.0.1");
        assert.equal(s.network.clusterDns, "10.254.0.2");
        assert.equal(s.network.interface, "ens192");
        assert.deepEqual(s.network.nodePortRange, { from: 30000, to: 32767 });
    });

    it("without lb hosts, clients use the single master", () => {
        const s = specOf({ masters: ["m1=10.0.0.11"], hostCidr: "10.0.0.0/24", sshHostKeyChecking: false, sshPrivateKey: "x" });
        assert.equal(s.apiEndpoint.url, "https://10.0.0.11:6443");
        assert.equal(s.loadBalancer, undefined);
    });

    it("masters can also be workers", () => {
        const s = specOf(HA_RAW, { mastersAreWorkers: true });
        assert.deepEqual(s.workers.map((h) => h.name), ["m1", "m2", "m3", "w1", "w2"]);
    });

    it("reads node, flannel and add-on settings, with their defaults", () => {
        const d = specOf(HA_RAW);
        assert.deepEqual(d.node, { sandboxImage: "registry.k8s.io/pause:3.10.1", registryMirrors: [], maxPods: 110, masterTaint: true, imageArchives: [], containerdExtraConfig: {}, kubeletExtraConfig: {}, kubeProxyExtraConfig: {}, rollBatchSize: 1 });
        assert.equal(d.network.flannelMode, "etcd");
        assert.equal(d.network.flannelEtcdPrefix, "/kubernetes/network");
        assert.deepEqual(d.addons, {
            enabled: ["coredns", "metrics-server", "headlamp"],
            images: {
                coredns: "registry.k8s.io/coredns/coredns:v1.13.1",
                metricsServer: "registry.k8s.io/metrics-server/metrics-server:v0.8.0",
                headlamp: "ghcr.io/headlamp-k8s/headlamp:v0.38.0",
            },
            upstreamDns: [],
            headlampAdmin: false,
        });
        const s = specOf(HA_RAW, {
            containerRegistryMirrors: ["docker.io=https://m1.example, http://10.0.0.5:5000/v2", "reg.local:5000=https://m2.example"],
            addons: "[]", maxPods: "250", podSubnetLength: 23, masterTaint: "false", mastersAreWorkers: true, flannelMode: "kube-subnet-mgr",
            sandboxImage: `reg.local:5000/pause@sha256:${"a".repeat(64)}`,
        });
        assert.deepEqual(s.node.registryMirrors, [
            { registry: "docker.io", mirrors: ["https://m1.example", "http://10.0.0.5:5000/v2"] },
            { registry: "reg.local:5000", mirrors: ["https://m2.example"] },
        ]);
        assert.deepEqual(s.addons.enabled, []);
        assert.equal(s.node.maxPods, 250);
        assert.equal(s.node.masterTaint, false);
        assert.equal(s.network.flannelMode, "kube-subnet-mgr");
    });

    it("reports every problem at once", () => {
        const p = problems(seed({ masters: ["a=172.16.60.241", "b=172.16.60.242"], vip: "172.16.60.241", kubeProxyMode: "userspace" }));
        assert.ok(p.length >= 3, p.join("\n"));
    });

    // Each row: a mistake, and what the message must say (the setting and the fix).
    const matrix: [string, RawConfig, RegExp][] = [
        ["duplicate host IP", { workers: ["k8s-node01=172.16.60.241"] }, /duplicate host IP 172\.16\.60\.241 \(k8s-master01 and k8s-node01\)/],
        ["duplicate host name", { workers: ["k8s-master01=172.16.60.244"] }, /listed as both master and worker.*mastersAreWorkers/],
        ["duplicate name in one role", { workers: ["n1=172.16.60.244", "n1=172.16.60.245"] }, /kubeha:workers: duplicate host name n1/],
        ["zero masters", { masters: [] }, /kubeha:masters: needs 1, 3 or 5 hosts/],
        ["even master count", { masters: ["a=172.16.60.241", "b=172.16.60.242"] }, /kubeha:masters: has 2 hosts; etcd needs an odd count/],
        ["host in two incompatible roles", { loadBalancers: ["k8s-ha01=172.16.60.247", "k8s-master01=172.16.60.241"] }, /listed as both master and lb; lb hosts must be dedicated/],
        ["lb count of 1", { loadBalancers: ["k8s-ha01=172.16.60.247"] }, /kubeha:loadBalancers: has 1 host; use 0 .* or 2\+/],
        ["VIP missing", { vip: "" }, /kubeha:vip: is required when there are lb hosts/],
        ["VIP equal to a host IP", { vip: "172.16.60.247" }, /kubeha:vip: 172\.16\.60\.247 is already host k8s-ha01's address/],
        ["VIP outside the hosts' subnet", { vip: "172.16.61.250" }, /kubeha:vip, kubeha:hostCidr: 172\.16\.61\.250 is outside the hosts' subnet 172\.16\.60\.0\/24/],
        ["VIP not an address", { vip: "vip.example" }, /kubeha:vip: "vip\.example" is not an IPv4 address/],
        ["host outside hostCidr", { workers: ["k8s-node01=172.16.70.244"] }, /host k8s-node01 \(172\.16\.70\.244\) is outside 172\.16\.60\.0\/24/],
        ["service CIDR overlaps pod CIDR", { podCidr: "10.254.128.0/17" }, /kubeha:serviceCidr, kubeha:podCidr: 10\.254\.0\.0\/16 and 10\.254\.128\.0\/17 overlap/],
        ["pod CIDR overlaps host CIDR", { podCidr: "172.16.0.0/12" }, /kubeha:hostCidr, kubeha:podCidr: .* overlap/],
        ["CIDR with host bits", { serviceCidr: "10.254.0.1/16" }, /kubeha:serviceCidr: "10\.254\.0\.1\/16" has host bits set \(did you mean 10\.254\.0\.0\/16\?\)/],
        ["CIDR malformed", { podCidr: "172.30.0.0" }, /kubeha:podCidr: "172\.30\.0\.0" not an IPv4 CIDR/],
        ["DNS IP outside the service CIDR", { clusterDns: "10.96.0.10" }, /kubeha:clusterDns, kubeha:serviceCidr: 10\.96\.0\.10 is outside the service range 10\.254\.0\.0\/16/],
        ["DNS IP on the kubernetes Service", { clusterDns: "10.254.0.1" }, /kubeha:clusterDns: 10\.254\.0\.1 is reserved .* use e\.g\. 10\.254\.0\.2/],
        ["pod subnet too short", { podSubnetLength: 16 }, /kubeha:podSubnetLength, kubeha:podCidr: 16 must be longer than podCidr's \/16/],
        ["pod subnets fewer than hosts", { podCidr: "172.30.0.0/24", podSubnetLength: 26 }, /gives fewer subnets than the 8 hosts/],
        ["malformed Kubernetes version", { kubernetesVersion: "1.37" }, /kubeha:kubernetesVersion: "1\.37" is not a release version like 1\.2\.3/],
        ["malformed etcd version", { etcdVersion: "latest" }, /kubeha:etcdVersion: "latest" is not a release version/],
        ["Kubernetes too old for the rendered flags", { kubernetesVersion: "1.14.2" }, /kubeha:kubernetesVersion: 1\.14\.2 is not supported/],
        ["unknown kube-proxy mode", { kubeProxyMode: "userspace" }, /kubeha:kubeProxyMode: must be one of nftables, ipvs, iptables, got "userspace"/],
        ["unknown flannel backend", { flannelBackend: "udp" }, /kubeha:flannelBackend: must be one of vxlan, host-gw, wireguard, got "udp"/],
        ["port out of range", { apiserverPort: 70000 }, /kubeha:apiserverPort: must be between 1 and 65535, got 70000/],
        ["port not a number", { sshPort: "ssh" }, /kubeha:sshPort: must be a whole number, got "ssh"/],
        ["ports colliding", { etcdPeerPort: 2379 }, /kubeha:etcdClientPort, kubeha:etcdPeerPort: both use port 2379/],
        ["port on a fixed component port", { apiserverPort: 10250 }, /kubeha:apiserverPort: port 10250 is used by kubelet/],
        ["port inside the NodePort range", { apiLoadBalancerPort: 30443 }, /kubeha:apiLoadBalancerPort, kubeha:nodePortRange: port 30443 is inside the NodePort range/],
        ["NodePort range malformed", { nodePortRange: "32767-30000" }, /kubeha:nodePortRange: "32767-30000" must be from-to/],
        ["VRRP router id out of range", { vrrpRouterId: 300 }, /kubeha:vrrpRouterId: must be between 1 and 255/],
        ["host entry malformed", { masters: ["k8s-master01:172.16.60.241"] }, /must be "name=ip"/],
        ["host name not a DNS label", { workers: ["Node_1=172.16.60.244"] }, /host name "Node_1" must be a lowercase DNS label/],
        ["host IP malformed", { workers: ["n1=172.16.60.300"] }, /host n1: "172\.16\.60\.300" is not an IPv4 address/],
        ["renewal window longer than validity", { certEarlyRenewalHours: 9000 }, /kubeha:certEarlyRenewalHours, kubeha:certValidityHours: renewal window 9000h/],
        ["local binaries without a directory", { binarySource: "local" }, /binarySource=local needs binaryDir/],
        ["bad checksum pin", { artifactChecksums: ["etcd=abc"] }, /kubeha:artifactChecksums: "etcd=abc" must be "key=<64 hex sha256>"/],
        ["etcd election vs heartbeat", { etcdElectionMs: 500 }, /election timeout 500ms should be at least 5x the heartbeat 250ms/],
        ["unknown flannel mode", { flannelMode: "kube" }, /kubeha:flannelMode: must be one of etcd, kube-subnet-mgr, got "kube"/],
        ["kube-subnet-mgr with masters that are not nodes", { flannelMode: "kube-subnet-mgr" }, /kubeha:flannelMode, kubeha:mastersAreWorkers: kube-subnet-mgr .* set kubeha:mastersAreWorkers=true or use flannelMode=etcd/],
        ["flannel etcd prefix not an absolute key path", { flannelEtcdPrefix: "kubernetes/network/" }, /kubeha:flannelEtcdPrefix: "kubernetes\/network\/" must be an absolute etcd key path like \/kubernetes\/network/],
        ["flannel etcd prefix inside the apiserver's", { flannelEtcdPrefix: "/registry/flannel" }, /kubeha:flannelEtcdPrefix: \/registry\/flannel lies in kube-apiserver's \/registry prefix .* use e\.g\. \/kubernetes\/network/],
        ["maxPods out of range", { maxPods: 5 }, /kubeha:maxPods: must be between 10 and 2500, got 5/],
        ["image archive not a tar", { imageArchives: ["/srv/images/pause.tgz"] }, /kubeha:imageArchives: "\/srv\/images\/pause.tgz" must be a .tar image archive/],
        ["image archives with one name", { imageArchives: ["/a/pause.tar", "/b/pause.tar"] }, /kubeha:imageArchives: two archives are named pause.tar; give them distinct file names/],
        ["CoreDNS upstream not an address", { upstreamDns: ["dns.example"] }, /kubeha:upstreamDns: "dns.example" is neither an IP\[:port\]/],
        ["containerd extra config not TOML", { containerdExtraConfig: "[plugins" }, /kubeha:containerdExtraConfig: is not valid TOML .*; give tables such as/],
        ["containerd extra config replacing the version", { containerdExtraConfig: "version = 2" }, /kubeha:containerdExtraConfig: must not set version: kubeha renders containerd's config version 3/],
        ["kubelet extra config not YAML", { kubeletExtraConfig: "a: [" }, /kubeha:kubeletExtraConfig: is not valid YAML .*; give a mapping of KubeletConfiguration fields/],
        ["kube-proxy extra config not a mapping", { kubeProxyExtraConfig: "- a" }, /kubeha:kubeProxyExtraConfig: must be a YAML mapping of KubeProxyConfiguration fields/],
        ["extra config replacing the header", { kubeletExtraConfig: "kind: Pod" }, /kubeha:kubeletExtraConfig: must not set kind: kubeha renders the KubeletConfiguration header/],
        ["maxPods beyond the node's pod subnet", { podSubnetLength: 25, maxPods: 200 }, /kubeha:maxPods, kubeha:podSubnetLength: 200 pods do not fit a node's \/25 pod subnet \(125 pod addresses\); lower maxPods or shorten podSubnetLength/],
        ["masterTaint not a boolean", { masterTaint: "yes" }, /kubeha:masterTaint: must be true or false, got "yes"/],
        ["sandbox image without a tag", { sandboxImage: "registry.k8s.io/pause" }, /kubeha:sandboxImage: "registry\.k8s\.io\/pause" must be a full image reference with a tag or digest, e\.g\. registry\.k8s\.io\/pause:3\.10\.1/],
        ["add-on image with only a registry port", { coreDnsImage: "reg.local:5000/coredns" }, /kubeha:coreDnsImage: "reg\.local:5000\/coredns" must be a full image reference with a tag or digest/],
        ["add-on image malformed", { headlampImage: "ghcr.io/Headlamp:latest tag" }, /kubeha:headlampImage: .* must be a full image reference/],
        ["registry mirror entry malformed", { containerRegistryMirrors: ["docker.io"] }, /kubeha:containerRegistryMirrors: "docker\.io" must be "registry=https:\/\/mirror\[,https:\/\/mirror2\]"/],
        ["registry mirror registry given as a URL", { containerRegistryMirrors: ["https://docker.io=https://m.example"] }, /kubeha:containerRegistryMirrors: registry "https:\/\/docker\.io" must be a registry host as image names spell it/],
        ["registry mirror not an http(s) URL", { containerRegistryMirrors: ["docker.io=https://a.example,ftp://m.example"] }, /kubeha:containerRegistryMirrors: docker\.io: mirror "ftp:\/\/m\.example" must be an http\(s\) URL/],
        ["registry mirrored in two entries", { containerRegistryMirrors: ["docker.io=https://a.example", "docker.io=https://b.example"] }, /kubeha:containerRegistryMirrors: registry docker\.io is listed twice; put all its mirrors in one entry/],
        ["unknown add-on", { addons: ["dashboard"] }, /kubeha:addons: unknown add-on "dashboard"; known: coredns, metrics-server, headlamp/],
        ["add-on listed twice", { addons: ["coredns", "coredns"] }, /kubeha:addons: coredns is listed twice/],
        ["containerd 1.x", { containerdVersion: "1.7.22" }, /kubeha:containerdVersion: 1\.7\.22 is not supported: kubeha renders containerd 2\.x config/],
    ];
    for (const [what, override, message] of matrix) {
        it(`rejects ${what}`, () => {
            const p = problems(seed(override));
            assert.ok(p.some((x) => message.test(x)), `expected ${message} in:\n${p.join("\n")}`);
        });
    }

    describe("facts of the machine running pulumi (strict for `pulumi up`, warnings for `check`)", () => {
        it("missing SSH credentials: an error when strict, a warning otherwise", () => {
            const raw = { ...HA_RAW, sshPrivateKey: undefined };
            assert.ok(problems(raw, { strict: true }).some((p) => /kubeha:sshPrivateKey: no SSH credentials/.test(p)));
            assert.doesNotThrow(() => loadClusterSpec(raw, { strict: true, sshAgent: true }));
            assert.ok(loadClusterSpec(raw, { strict: false }).warnings.some((w) => /no SSH credentials/.test(w)));
        });

        it("host-key checking needs a known_hosts entry per host", () => {
            const raw = { ...HA_RAW, sshHostKeyChecking: true };
            const known = "198.18.0.11 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKm1\n";
            const p = problems(raw, { strict: true, knownHosts: known });
            assert.ok(p.some((x) => /host m2 \(198\.18\.0\.12\) has no entry.*ssh-keyscan/.test(x)), p.join("\n"));
            assert.ok(!p.some((x) => /host m1 /.test(x)), "m1 is listed");
            assert.ok(problems(raw, { strict: true }).some((x) => /kubeha:sshKnownHostsFile: cannot be read/.test(x)));
        });

        it("reads hashed known_hosts entries and non-default ports", () => {
            const { createHmac } = require("node:crypto");
            const salt = Buffer.from("0123456789abcdef0123");
            const hashed = (h: string) => `|1|${salt.toString("base64")}|${createHmac("sha1", salt).update(h).digest("base64")}`;
            const ips = ["198.18.0.11", "198.18.0.12", "198.18.0.13", "198.18.0.21", "198.18.0.22", "198.18.0.31", "198.18.0.32"];
            const known = ips.map((ip, i) => `${hashed(`[${ip}]:2222`)} ssh-ed25519 KEY${i}`).join("\n");
            const { spec } = loadClusterSpec({ ...HA_RAW, sshHostKeyChecking: true, sshPort: 2222 }, { strict: true, knownHosts: known });
            assert.equal(spec.masters[1].hostKey, "ssh-ed25519 KEY1");
        });

        it("an artifact without a published checksum blocks `pulumi up` in download mode, not in local mode", () => {
            const raw = { ...HA_RAW, flannelVersion: "0.28.9", binarySource: "download" };
            assert.ok(problems(raw, { strict: true }).some((p) => /no published sha256 known for flannel 0\.28\.9/.test(p)));
            assert.doesNotThrow(() => loadClusterSpec({ ...raw, binarySource: "local", binaryDir: "/srv/k8s" }, { strict: true }));
            const pinned = { ...raw, artifactChecksums: [`flannel=${"a".repeat(64)}`, `flannel-cni-plugin=${"b".repeat(64)}`] };
            assert.doesNotThrow(() => loadClusterSpec(pinned, { strict: true }));
        });
    });
});
