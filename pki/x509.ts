// Real X.509 in-process, shaped like @pulumi/tls's resources (PrivateKey, CertRequest,
// SelfSignedCert, LocallySignedCert). Used by the unit tests' tls mock and by `npm run render`'s
// preview PKI; never by `pulumi up`, where @pulumi/tls issues the certificates.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, webcrypto } from "node:crypto";
import type { KeyAlgorithm } from "../spec/types";
import type { Usage } from "./certlist";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type SignAlgorithm = webcrypto.Algorithm | webcrypto.EcdsaParams;

export interface Subject {
    commonName?: string;
    organization?: string;
}

export interface KeyPem {
    /** SEC1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY"), as tls.PrivateKey.privateKeyPem. */
    privateKeyPem: string;
    privateKeyPemPkcs8: string;
    publicKeyPem: string;
}

const ALGORITHMS: Record<KeyAlgorithm, { gen: webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams; sign: SignAlgorithm }> = {
    ECDSA: { gen: { name: "ECDSA", namedCurve: "P-256" }, sign: { name: "ECDSA", hash: "SHA-256" } as webcrypto.EcdsaParams },
    RSA: {
        gen: { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
        sign: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as webcrypto.Algorithm,
    },
};

const KEY_USAGE_FLAGS: Partial<Record<Usage, x509.KeyUsageFlags>> = {
    digital_signature: x509.KeyUsageFlags.digitalSignature,
    key_encipherment: x509.KeyUsageFlags.keyEncipherment,
    cert_signing: x509.KeyUsageFlags.keyCertSign,
    crl_signing: x509.KeyUsageFlags.cRLSign,
};
const SAN_OID = "2.5.29.17";
const EXTENDED_KEY_USAGES: Partial<Record<Usage, string>> = {
    server_auth: x509.ExtendedKeyUsage.serverAuth,
    client_auth: x509.ExtendedKeyUsage.clientAuth,
};

function algorithmOf(pem: string): KeyAlgorithm {
    return createPrivateKey(pem).asymmetricKeyType === "ec" ? "ECDSA" : "RSA";
}

async function importKeys(privateKeyPem: string): Promise<CryptoKeyPair> {
    const alg = ALGORITHMS[algorithmOf(privateKeyPem)].gen;
    const priv = createPrivateKey(privateKeyPem);
    const privateKey = await webcrypto.subtle.importKey("pkcs8", priv.export({ type: "pkcs8", format: "der" }), alg, true, ["sign"]);
    const publicKey = await webcrypto.subtle.importKey("spki", createPublicKey(priv).export({ type: "spki", format: "der" }), alg, true, ["verify"]);
    return { privateKey, publicKey } as CryptoKeyPair;
}

export function generateKey(algorithm: KeyAlgorithm): KeyPem {
    const pair = algorithm === "ECDSA"
        ? generateKeyPairSync("ec", { namedCurve: "P-256" })
        : generateKeyPairSync("rsa", { modulusLength: 2048 });
    return {
        privateKeyPem: pair.privateKey.export({ type: algorithm === "ECDSA" ? "sec1" : "pkcs1", format: "pem" }).toString(),
        privateKeyPemPkcs8: pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
        publicKeyPem: pair.publicKey.export({ type: "spki", format: "pem" }).toString(),
    };
}

function jsonName(subject: Subject): x509.JsonName {
    const name: x509.JsonName = [];
    if (subject.organization) name.push({ O: [subject.organization] });
    if (subject.commonName) name.push({ CN: [subject.commonName] });
    return name;
}

export async function createCertRequest(args: { privateKeyPem: string; subject: Subject; dnsNames?: string[]; ipAddresses?: string[] }): Promise<string> {
    const keys = await importKeys(args.privateKeyPem);
    const sans = [
        ...(args.dnsNames ?? []).map((value) => ({ type: "dns" as const, value })),
        ...(args.ipAddresses ?? []).map((value) => ({ type: "ip" as const, value })),
    ];
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
        name: jsonName(args.subject), keys, signingAlgorithm: ALGORITHMS[algorithmOf(args.privateKeyPem)].sign,
        extensions: sans.length ? [new x509.SubjectAlternativeNameExtension(sans)] : [],
    });
    return csr.toString("pem");
}

interface IssueArgs {
    validityPeriodHours: number;
    allowedUses: Usage[];
    isCaCert?: boolean;
}

async function issue(args: IssueArgs & {
    subject: x509.Name; publicKey: x509.PublicKey; sans?: x509.Extension; issuer: x509.Name; issuerPublicKey: x509.PublicKey;
    signingKey: CryptoKey; signingAlgorithm: SignAlgorithm;
}): Promise<string> {
    const notBefore = new Date();
    const flags = args.allowedUses.reduce((f, u) => f | (KEY_USAGE_FLAGS[u] ?? 0), 0);
    const ekus = args.allowedUses.flatMap((u) => (EXTENDED_KEY_USAGES[u] ? [EXTENDED_KEY_USAGES[u]!] : []));
    const extensions: x509.Extension[] = [
        new x509.BasicConstraintsExtension(!!args.isCaCert, undefined, true),
        new x509.KeyUsagesExtension(flags, true),
        await x509.SubjectKeyIdentifierExtension.create(args.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(args.issuerPublicKey),
    ];
    if (ekus.length) extensions.push(new x509.ExtendedKeyUsageExtension(ekus));
    if (args.sans) extensions.push(args.sans);
    const cert = await x509.X509CertificateGenerator.create({
        serialNumber: randomBytes(16).toString("hex").replace(/^[89a-f]/, "1"),
        subject: args.subject, issuer: args.issuer, notBefore,
        notAfter: new Date(notBefore.getTime() + args.validityPeriodHours * 3600_000),
        publicKey: args.publicKey, signingKey: args.signingKey, signingAlgorithm: args.signingAlgorithm, extensions,
    });
    return cert.toString("pem");
}

export async function createSelfSignedCert(args: IssueArgs & { privateKeyPem: string; subject: Subject }): Promise<string> {
    const keys = await importKeys(args.privateKeyPem);
    const name = new x509.Name(jsonName(args.subject));
    const publicKey = await x509.PublicKey.create(keys.publicKey);
    return issue({
        ...args, subject: name, issuer: name, publicKey, issuerPublicKey: publicKey, signingKey: keys.privateKey,
        signingAlgorithm: ALGORITHMS[algorithmOf(args.privateKeyPem)].sign,
    });
}

/** Like tls.LocallySignedCert: subject and SANs come from the CSR, usages from the args. */
export async function signCertRequest(args: IssueArgs & { certRequestPem: string; caCertPem: string; caPrivateKeyPem: string }): Promise<string> {
    const csr = new x509.Pkcs10CertificateRequest(args.certRequestPem);
    if (!(await csr.verify())) throw new Error("certificate request signature does not verify");
    const ca = new x509.X509Certificate(args.caCertPem);
    const caKeys = await importKeys(args.caPrivateKeyPem);
    return issue({
        ...args, subject: new x509.Name(csr.subject), publicKey: csr.publicKey,
        sans: requestedSans(csr),
        issuer: new x509.Name(ca.subject), issuerPublicKey: ca.publicKey, signingKey: caKeys.privateKey,
        signingAlgorithm: ALGORITHMS[algorithmOf(args.caPrivateKeyPem)].sign,
    });
}

function requestedSans(csr: x509.Pkcs10CertificateRequest): x509.Extension | undefined {
    const ext = csr.extensions.find((e) => e.type === SAN_OID);
    return ext ? new x509.SubjectAlternativeNameExtension(ext.rawData) : undefined;
}

export interface CertificateFacts {
    commonName?: string;
    organizations: string[];
    issuerCommonName?: string;
    dnsNames: string[];
    ipAddresses: string[];
    extendedKeyUsages: ("server_auth" | "client_auth")[];
    isCa: boolean;
    notAfter: Date;
}

/** Parses a PEM certificate into the facts the certificate table speaks of. */
export function describeCertificate(pem: string): CertificateFacts {
    const cert = new x509.X509Certificate(pem);
    const subject = cert.subjectName.toJSON();
    const issuer = cert.issuerName.toJSON();
    const pick = (name: x509.JsonName, attr: string) => name.flatMap((rdn) => rdn[attr] ?? []);
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
    const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
    const bc = cert.getExtension(x509.BasicConstraintsExtension);
    const names = san?.names.toJSON() ?? [];
    return {
        commonName: pick(subject, "CN")[0],
        organizations: pick(subject, "O"),
        issuerCommonName: pick(issuer, "CN")[0],
        dnsNames: names.filter((n) => n.type === "dns").map((n) => n.value),
        ipAddresses: names.filter((n) => n.type === "ip").map((n) => n.value),
        extendedKeyUsages: [...(eku?.usages ?? [])].flatMap((u) =>
            u === x509.ExtendedKeyUsage.serverAuth ? ["server_auth" as const] : u === x509.ExtendedKeyUsage.clientAuth ? ["client_auth" as const] : []),
        isCa: !!bc?.ca,
        notAfter: cert.notAfter,
    };
}

/** True when `pem` is signed by the CA certificate `caPem`. */
export async function isSignedBy(pem: string, caPem: string): Promise<boolean> {
    const cert = new x509.X509Certificate(pem);
    const ca = new x509.X509Certificate(caPem);
    return cert.issuer === ca.subject && (await cert.verify({ publicKey: ca.publicKey, signatureOnly: true }));
}
