// kubeha: `pulumi up` turns the hosts of this stack's config into an HA Kubernetes cluster.
import * as pulumi from "@pulumi/pulumi";
import { loadClusterSpec, RawConfig } from "./spec/config";
import { NAMESPACE, SETTINGS, SettingKey } from "./spec/settings";
import { expandHome, readKnownHosts } from "./spec/stack-config";
import { readFileSync } from "node:fs";
import { Cluster } from "./components/cluster";

const config = new pulumi.Config(NAMESPACE);
const raw: RawConfig = {};
for (const key of Object.keys(SETTINGS) as SettingKey[]) {
    if (key === "sshPrivateKey") continue;
    raw[key] = SETTINGS[key].type === "array" ? config.getObject<string[]>(key) : config.get(key);
}
raw.sshPrivateKey = pulumi.runtime.getConfig(`${NAMESPACE}:sshPrivateKey`) ? "[secret]" : undefined;
// The engine lists the keys that are encrypted in the stack file; a plaintext key is refused.
const secretKeys: string[] = JSON.parse(process.env.PULUMI_CONFIG_SECRET_KEYS ?? "null") ?? [];
if (raw.sshPrivateKey && process.env.PULUMI_CONFIG_SECRET_KEYS !== undefined && !secretKeys.includes(`${NAMESPACE}:sshPrivateKey`)) {
    throw new Error(`${NAMESPACE}:sshPrivateKey is stored in plaintext in Pulumi.${pulumi.getStack()}.yaml: ` +
        `remove it and set it again with \`pulumi config set --secret ${NAMESPACE}:sshPrivateKey < ~/.ssh/id_ed25519\``);
}

// Every config mistake is reported here, at once, before any resource exists.
const { spec, warnings } = loadClusterSpec(raw, {
    knownHosts: readKnownHosts(raw),
    sshAgent: !!process.env.SSH_AUTH_SOCK,
    strict: true,
});
for (const w of warnings) pulumi.log.warn(w);

// How kubeha reaches the hosts is provider configuration (host/ssh.ts reads the same settings):
// no resource holds the key, so a new key, user or port changes no resource. Check it here, before
// anything touches a host.
if (!raw.sshPrivateKey && raw.sshPrivateKeyFile) {
    const file = raw.sshPrivateKeyFile as string;
    try {
        readFileSync(expandHome(file), "utf8");
    } catch (e) {
        throw new Error(`${NAMESPACE}:sshPrivateKeyFile: cannot read ${file}: ${(e as Error).message}`, { cause: e });
    }
}

const cluster = new Cluster(spec.clusterName, { spec });

export const kubeconfig = cluster.kubeconfig;
export const apiEndpoint = cluster.apiEndpoint;
export const clusterCaCertificate = cluster.clusterCaCert;
export const nodes = spec.hosts.map((h) => ({ name: h.name, ip: h.ip, roles: h.roles }));
