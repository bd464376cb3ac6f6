// kubeha: `pulumi up` turns the hosts of this stack's config into an HA Kubernetes cluster.
import * as pulumi from "@pulumi/pulumi";
import { loadClusterSpec, RawConfig } from "./spec/config";
import { NAMESPACE, SETTINGS, SettingKey } from "./spec/settings";
import { readKnownHosts } from "./spec/stack-config";
import { Cluster } from "./components/cluster";

const config = new pulumi.Config(NAMESPACE);
const raw: RawConfig = {};
for (const key of Object.keys(SETTINGS) as SettingKey[]) {
    if (key === "sshPrivateKey") continue;
    raw[key] = SETTINGS[key].type === "array" ? config.getObject<string[]>(key) : config.get(key);
}
const sshPrivateKey = config.getSecret("sshPrivateKey");
raw.sshPrivateKey = pulumi.runtime.getConfig(`${NAMESPACE}:sshPrivateKey`) ? "[secret]" : undefined;

// Every config mistake is reported here, at once, before any resource exists.
const { spec, warnings } = loadClusterSpec(raw, {
    knownHosts: readKnownHosts(raw),
    sshAgent: !!process.env.SSH_AUTH_SOCK,
    strict: true,
});
for (const w of warnings) pulumi.log.warn(w);

const cluster = new Cluster(spec.clusterName, { spec, sshPrivateKey: raw.sshPrivateKey ? sshPrivateKey : undefined });

export const kubeconfig = cluster.kubeconfig;
export const apiEndpoint = cluster.apiEndpoint;
export const clusterCaCertificate = cluster.clusterCaCert;
export const nodes = spec.hosts.map((h) => ({ name: h.name, ip: h.ip, roles: h.roles }));
