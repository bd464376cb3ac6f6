// End-to-end program for the lab stand-in plugins: a CA and a locally signed certificate
// (@pulumi/tls), random values (@pulumi/random), and a remote.Command + CopyToRemote against the
// test sshd that run.sh starts on 127.0.0.1. Config (set by run.sh): sshPort, sshUser, sshKey
// (secret), hostKey, remoteDir, and the knobs trigger / updateTag that the run changes.
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import * as random from "@pulumi/random";
import * as command from "@pulumi/command";

const cfg = new pulumi.Config();
const dir = cfg.require("remoteDir");

const caKey = new tls.PrivateKey("ca-key", { algorithm: "ECDSA", ecdsaCurve: "P256" });
const ca = new tls.SelfSignedCert("ca", {
    privateKeyPem: caKey.privateKeyPem,
    subject: { commonName: "e2e-ca" },
    isCaCertificate: true,
    allowedUses: ["cert_signing", "crl_signing", "digital_signature", "key_encipherment"],
    validityPeriodHours: 87600,
    earlyRenewalHours: 720,
});
const leafKey = new tls.PrivateKey("leaf-key", { algorithm: "RSA", rsaBits: 2048 });
const csr = new tls.CertRequest("leaf-csr", {
    privateKeyPem: leafKey.privateKeyPem,
    subject: { commonName: "kube-apiserver", organization: "kubeha" },
    dnsNames: ["kubernetes", "kubernetes.default.svc"],
    ipAddresses: ["127.0.0.1", "10.96.0.1"],
});
const leaf = new tls.LocallySignedCert("leaf", {
    certRequestPem: csr.certRequestPem,
    caCertPem: ca.certPem,
    caPrivateKeyPem: caKey.privateKeyPem,
    allowedUses: ["digital_signature", "key_encipherment", "server_auth", "client_auth"],
    validityPeriodHours: 8760,
    earlyRenewalHours: 720,
});

const password = new random.RandomPassword("password", { length: 16, special: false });
const tokenId = new random.RandomString("token-id", { length: 6, upper: false, special: false, lower: true, numeric: true });
const encKey = new random.RandomBytes("enc-key", { length: 32 });

const connection: command.types.input.remote.ConnectionArgs = {
    host: "127.0.0.1",
    port: cfg.requireNumber("sshPort"),
    user: cfg.require("sshUser"),
    privateKey: cfg.requireSecret("sshKey"),
    hostKey: cfg.require("hostKey"),
    dialErrorLimit: 5,
    perDialTimeout: 5,
};

// Content travels on stdin (a secret), never on the command line, as kubeha does.
const put = new command.remote.Command("put", {
    connection,
    create: `mkdir -p ${dir} && cat > ${dir}/bundle.pem && echo create >> ${dir}/log && echo created`,
    update: `cat > ${dir}/bundle.pem && echo ${cfg.get("updateTag") ?? "update"} >> ${dir}/log && echo updated`,
    delete: `echo delete >> ${dir}/log && rm -f ${dir}/bundle.pem`,
    stdin: pulumi.secret(pulumi.interpolate`${leaf.certPem}${ca.certPem}${password.result}\n`),
    triggers: [cfg.get("trigger") ?? "t1"],
    addPreviousOutputInEnv: false,
});

const copy = new command.remote.CopyToRemote("copy", {
    connection,
    source: new pulumi.asset.FileAsset("payload.txt"),
    remotePath: `${dir}/uploads/x/payload.txt`,
}, { dependsOn: [put] });

// A certificate that is always due for renewal (validity 1h, early renewal 2h): every `pulumi up`
// must replace it, as the real provider's plan does once now >= validityEndTime - earlyRenewalHours.
if (cfg.getBoolean("renewTest")) {
    new tls.SelfSignedCert("due", {
        privateKeyPem: caKey.privateKeyPem,
        subject: { commonName: "due" },
        allowedUses: ["server_auth"],
        validityPeriodHours: 1,
        earlyRenewalHours: 2,
    });
}

export const caCert = ca.certPem;
export const leafCert = leaf.certPem;
export const leafKeyPem = leafKey.privateKeyPem;
export const passwordResult = password.result;
export const token = tokenId.result;
export const encKeyBase64 = encKey.base64;
export const putStdout = put.stdout;
export const copiedTo = copy.remotePath;
