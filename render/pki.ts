// Which PKI file lands on which host: CA certificates, the few CA keys that sign on a host,
// every leaf certificate from the table, kubeconfigs, the service-account key pair, the
// bootstrap kubeconfig and the encryption-at-rest config. Each host gets only what it uses.
import { stringify } from "yaml";
import { BOOTSTRAP_KUBECONFIG, CaName, CAS, certificatesFor, SERVICE_ACCOUNT_KEY } from "../pki/certlist";
import { ClusterSpec } from "../spec/types";
import { ENCRYPTION_CONFIG } from "./paths";
import { renderKubeconfig } from "./kubeconfig";
import { addFile, HostFiles, publicFile, secretFile } from "./types";

export interface CertAndKey {
    certPem: string;
    keyPem: string;
}

/** Plain key material, as the CertificateAuthority component resolves it from @pulumi/tls and @pulumi/random. */
export interface PkiMaterial {
    cas: Record<CaName, CertAndKey>;
    /** By CertSpec name (pki/certlist.ts). */
    certs: Record<string, CertAndKey>;
    serviceAccount: { publicKeyPem: string; privateKeyPem: string };
    /** "<id>.<secret>" */
    bootstrapToken: string;
    /** 32 random bytes, base64. */
    encryptionKey: string;
}

export function renderEncryptionConfig(encryptionKey: string): string {
    return stringify({
        apiVersion: "apiserver.config.k8s.io/v1",
        kind: "EncryptionConfiguration",
        resources: [{
            resources: ["secrets"],
            // secretbox first: new writes are encrypted; identity last so data written before can still be read.
            providers: [{ secretbox: { keys: [{ name: "key1", secret: encryptionKey }] } }, { identity: {} }],
        }],
    });
}

export function renderPkiFiles(s: ClusterSpec, m: PkiMaterial): HostFiles {
    const files: HostFiles = new Map(s.hosts.map((h) => [h.name, []]));
    for (const ca of CAS) {
        for (const h of ca.certHosts(s)) addFile(files, h.name, publicFile(ca.certPath, m.cas[ca.name].certPem));
        for (const h of ca.keyHosts(s)) addFile(files, h.name, secretFile(ca.keyPath, m.cas[ca.name].keyPem));
    }
    for (const cert of certificatesFor(s)) {
        const material = m.certs[cert.name];
        if (!material) throw new Error(`no key material for certificate ${cert.name}`);
        for (const h of cert.hosts) {
            if (cert.placement.kind === "files") {
                addFile(files, h.name, publicFile(cert.placement.certPath, material.certPem));
                addFile(files, h.name, secretFile(cert.placement.keyPath, material.keyPem));
            } else {
                addFile(files, h.name, secretFile(cert.placement.path, renderKubeconfig({
                    clusterName: s.clusterName, server: cert.placement.server(s), caCertPem: m.cas[cert.signer].certPem,
                    user: cert.commonName, clientCertPem: material.certPem, clientKeyPem: material.keyPem,
                })));
            }
        }
    }
    for (const h of SERVICE_ACCOUNT_KEY.hosts(s)) {
        addFile(files, h.name, publicFile(SERVICE_ACCOUNT_KEY.publicPath, m.serviceAccount.publicKeyPem));
        addFile(files, h.name, secretFile(SERVICE_ACCOUNT_KEY.privatePath, m.serviceAccount.privateKeyPem));
        addFile(files, h.name, secretFile(ENCRYPTION_CONFIG, renderEncryptionConfig(m.encryptionKey)));
    }
    for (const h of BOOTSTRAP_KUBECONFIG.hosts(s)) {
        addFile(files, h.name, secretFile(BOOTSTRAP_KUBECONFIG.path, renderKubeconfig({
            clusterName: s.clusterName, server: s.apiEndpoint.url, caCertPem: m.cas.ca.certPem,
            user: BOOTSTRAP_KUBECONFIG.user, token: m.bootstrapToken,
        })));
    }
    return files;
}
