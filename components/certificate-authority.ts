// CertificateAuthority: the cluster's three CAs, every leaf certificate of pki/certlist.ts, the
// service-account key pair, the TLS-bootstrap token and the encryption-at-rest key. Keys live only
// in Pulumi state (secret) and on the hosts that use them.
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import * as random from "@pulumi/random";
import { CA_USAGES, CaName, CAS, certificatesFor } from "../pki/certlist";
import { ClusterSpec } from "../spec/types";
import { CertAndKey, PkiMaterial, renderPkiFiles } from "../render/pki";
import { HostFile } from "../render/types";

export interface CertificateAuthorityArgs {
    spec: ClusterSpec;
}

export class CertificateAuthority extends pulumi.ComponentResource {
    /** PEM of each CA certificate. */
    readonly caCerts: Record<CaName, pulumi.Output<string>>;
    /** All key material, resolved (secret). */
    readonly material: pulumi.Output<PkiMaterial>;
    /** "<id>.<secret>" for kubelet TLS bootstrapping (secret). */
    readonly bootstrapToken: pulumi.Output<string>;
    readonly bootstrapTokenId: pulumi.Output<string>;

    constructor(name: string, args: CertificateAuthorityArgs, opts?: pulumi.ComponentResourceOptions) {
        super("kubeha:pki:CertificateAuthority", name, {}, opts);
        const { spec } = args;
        const c = spec.certificates;
        const keyArgs: tls.PrivateKeyArgs = c.keyAlgorithm === "ECDSA" ? { algorithm: "ECDSA", ecdsaCurve: "P256" } : { algorithm: "RSA", rsaBits: 2048 };
        const child = { parent: this };

        const cas = {} as Record<CaName, { key: tls.PrivateKey; cert: tls.SelfSignedCert }>;
        for (const ca of CAS) {
            const key = new tls.PrivateKey(`${name}-${ca.name}-key`, keyArgs, child);
            const cert = new tls.SelfSignedCert(`${name}-${ca.name}`, {
                privateKeyPem: key.privateKeyPem,
                subject: { commonName: ca.commonName },
                isCaCertificate: true,
                allowedUses: CA_USAGES,
                validityPeriodHours: c.caValidityHours,
                earlyRenewalHours: c.earlyRenewalHours,
            }, child);
            cas[ca.name] = { key, cert };
        }

        const certs: Record<string, pulumi.Output<CertAndKey>> = {};
        for (const spec_ of certificatesFor(spec)) {
            const key = new tls.PrivateKey(`${name}-${spec_.name}-key`, keyArgs, child);
            const csr = new tls.CertRequest(`${name}-${spec_.name}-csr`, {
                privateKeyPem: key.privateKeyPem,
                subject: { commonName: spec_.commonName, organization: spec_.organization },
                dnsNames: spec_.dnsNames,
                ipAddresses: spec_.ipAddresses,
            }, child);
            const signer = cas[spec_.signer];
            const cert = new tls.LocallySignedCert(`${name}-${spec_.name}`, {
                certRequestPem: csr.certRequestPem,
                caCertPem: signer.cert.certPem,
                caPrivateKeyPem: signer.key.privateKeyPem,
                allowedUses: spec_.usages,
                validityPeriodHours: c.validityHours,
                earlyRenewalHours: c.earlyRenewalHours,
            }, child);
            certs[spec_.name] = pulumi.all([cert.certPem, key.privateKeyPem]).apply(([certPem, keyPem]) => ({ certPem, keyPem }));
        }

        const saKey = new tls.PrivateKey(`${name}-service-account-key`, keyArgs, child);
        // Bootstrap token format: [a-z0-9]{6}.[a-z0-9]{16} (kubeadm's bootstraptoken).
        const tokenChars = { upper: false, special: false, lower: true, numeric: true };
        const tokenId = new random.RandomString(`${name}-bootstrap-token-id`, { length: 6, ...tokenChars }, child);
        const tokenSecret = new random.RandomPassword(`${name}-bootstrap-token-secret`, { length: 16, ...tokenChars }, child);
        const encryptionKey = new random.RandomBytes(`${name}-encryption-key`, { length: 32 }, child);

        this.bootstrapTokenId = tokenId.result;
        this.bootstrapToken = pulumi.secret(pulumi.interpolate`${tokenId.result}.${tokenSecret.result}`);
        this.caCerts = Object.fromEntries(CAS.map((ca) => [ca.name, cas[ca.name].cert.certPem])) as Record<CaName, pulumi.Output<string>>;
        const caMaterial = pulumi.all(Object.fromEntries(CAS.map((ca) => [ca.name,
            pulumi.all([cas[ca.name].cert.certPem, cas[ca.name].key.privateKeyPem]).apply(([certPem, keyPem]) => ({ certPem, keyPem }))])));
        this.material = pulumi.secret(pulumi.all([caMaterial, pulumi.all(certs), saKey.publicKeyPem, saKey.privateKeyPem, this.bootstrapToken, encryptionKey.base64])
            .apply(([caM, certM, publicKeyPem, privateKeyPem, bootstrapToken, key]) => ({
                cas: caM as Record<CaName, CertAndKey>, certs: certM, serviceAccount: { publicKeyPem, privateKeyPem },
                bootstrapToken, encryptionKey: key,
            })));
        this.registerOutputs({ caCerts: this.caCerts, bootstrapTokenId: this.bootstrapTokenId });
    }

    /** The PKI files one host receives (only what it uses), as a secret. */
    filesFor(spec: ClusterSpec, hostName: string): pulumi.Output<HostFile[]> {
        return this.material.apply((m) => renderPkiFiles(spec, m).get(hostName) ?? []);
    }
}
