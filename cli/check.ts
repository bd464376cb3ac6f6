// npm run check -- <stack>: validate Pulumi.<stack>.yaml and print the plan. No engine, no hosts.
import { loadStack } from "./load";
import { artifactsFor } from "../spec/artifacts";
import { CAS, certificatesFor } from "../pki/certlist";

const { spec, warnings } = loadStack(process.argv[2], "npm run check -- <stack>");
const out: string[] = [];
const say = (s = "") => out.push(s);
const pad = (s: string, n: number) => s.padEnd(n);

say(`kubeha plan for stack ${process.argv[2]}: cluster "${spec.clusterName}", Kubernetes ${spec.versions.kubernetes}`);
say();
say("Hosts");
for (const h of spec.hosts) say(`  ${pad(h.name, 16)} ${pad(h.ip, 16)} ${h.roles.join(", ")}${h.hostKey ? "" : spec.ssh.hostKeyChecking ? "  (no known_hosts entry yet)" : ""}`);
say();
say("API endpoint");
say(spec.loadBalancer
    ? `  ${spec.apiEndpoint.url}  (VIP ${spec.loadBalancer.vip} held by keepalived on ${spec.loadBalancers.map((h) => h.name).join(", ")}, VRID ${spec.loadBalancer.virtualRouterId}; nginx stream -> ${spec.masters.map((m) => `${m.ip}:${spec.ports.apiserver}`).join(", ")})`
    : `  ${spec.apiEndpoint.url}  (single master, no load balancer)`);
say();
const n = spec.network;
say("Network");
say(`  hosts ${n.hostCidr} on ${n.interface}; services ${n.serviceCidr} (kubernetes ${spec.kubernetesServiceIp}, DNS ${n.clusterDns}, domain ${n.clusterDomain}); NodePorts ${n.nodePortRange.from}-${n.nodePortRange.to}`);
say(`  pods ${n.podCidr} in /${n.podSubnetLength} per node, flannel ${n.flannelBackend}; kube-proxy ${n.kubeProxyMode}`);
say(`  SSH ${spec.ssh.user}@:${spec.ssh.port}${spec.ssh.sudo ? " with sudo" : ""}, host-key checking ${spec.ssh.hostKeyChecking ? "on" : "OFF"}`);
say();
say(`Artifacts (${spec.binarySource.kind === "download" ? "each host downloads and checks sha256" : `uploaded from ${spec.binarySource.localDir}`})`);
for (const a of artifactsFor(spec)) {
    say(`  ${pad(a.key, 24)} ${pad(a.version, 15)} -> ${a.installDir}/{${Object.keys(a.members).join(",")}} on ${a.hosts.length} host(s)`);
    say(`      ${a.url}`);
    say(`      sha256 ${a.sha256 ?? "UNKNOWN (set kubeha:artifactChecksums)"}${a.checksumSource ? `  [${a.checksumSource}]` : ""}`);
}
say();
say(`Certificates (${spec.certificates.keyAlgorithm} keys; CAs ${spec.certificates.caValidityHours}h, leaves ${spec.certificates.validityHours}h, re-issued within ${spec.certificates.earlyRenewalHours}h of expiry)`);
for (const ca of CAS) say(`  ${pad(ca.name, 36)} CA  CN=${ca.commonName}  -> ${ca.certPath}`);
for (const c of certificatesFor(spec)) {
    const where = c.placement.kind === "files" ? c.placement.certPath : `${c.placement.path} (kubeconfig, server ${c.placement.server(spec)})`;
    say(`  ${pad(c.name, 36)} by ${pad(c.signer, 15)} CN=${c.commonName}${c.organization ? `, O=${c.organization}` : ""}  [${c.usages.filter((u) => u.endsWith("_auth")).join(",")}]`);
    if (c.dnsNames.length || c.ipAddresses.length) say(`      SANs: ${[...c.dnsNames, ...c.ipAddresses].join(", ")}`);
    say(`      on ${c.hosts.map((h) => h.name).join(", ")} -> ${where}`);
}
say(`  service-account key pair (sa.key/sa.pub), bootstrap token, encryption-at-rest key (secretbox): Pulumi secrets`);
if (warnings.length) {
    say();
    say("Warnings");
    for (const w of warnings) say(`  - ${w}`);
}
console.log(out.join("\n"));
