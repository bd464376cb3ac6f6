// Pulumi mocks that behave like the real providers where it matters: @pulumi/tls mocks build real
// keys, CSRs and certificates from the resource args (pki/x509.ts), so tests verify the actual
// certificate set; @pulumi/random mocks return random values of the requested shape.
import * as pulumi from "@pulumi/pulumi";
import { randomBytes } from "node:crypto";
import { createCertRequest, createSelfSignedCert, generateKey, signCertRequest } from "../pki/x509";
import { HA_RAW, specOf } from "./fixtures";
import type { RawConfig } from "../spec/config";

const SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

export interface Recorded {
    type: string;
    name: string;
    /** Inputs with secrets unwrapped. */
    inputs: Record<string, any>;
    /** Names of inputs that arrived as secrets. */
    secretInputs: string[];
    parent?: string;
    dependsOn: string[];
}

export function isSecretValue(v: unknown): boolean {
    return typeof v === "object" && v !== null && (v as Record<string, unknown>)[SIG_KEY] === SECRET_SIG;
}

export function unwrap(v: any): any {
    if (isSecretValue(v)) return unwrap(v.value);
    if (Array.isArray(v)) return v.map(unwrap);
    if (v && typeof v === "object" && !(v instanceof pulumi.asset.Asset)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrap(x)]));
    return v;
}

function randomText(length: number, inputs: Record<string, unknown>): string {
    let chars = "";
    if (inputs.lower !== false) chars += "abcdefghijklmnopqrstuvwxyz";
    if (inputs.upper !== false) chars += "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    if (inputs.numeric !== false) chars += "0123456789";
    if (inputs.special !== false) chars += "!@#$%&*()-_=+[]{}<>:?";
    return [...randomBytes(length)].map((b) => chars[b % chars.length]).join("");
}

// Same resource name and args -> same outputs, across program runs in one process, as the engine
// keeps unchanged resources: lets a test change one setting and see exactly what changes.
const memo = new Map<string, Promise<Record<string, unknown>>>();

function outputsFor(type: string, name: string, i: Record<string, any>): Promise<Record<string, unknown>> {
    const key = `${type}::${name}::${JSON.stringify(i)}`;
    if (!memo.has(key)) memo.set(key, computeOutputs(type, i));
    return memo.get(key)!;
}

async function computeOutputs(type: string, i: Record<string, any>): Promise<Record<string, unknown>> {
    switch (type) {
        case "tls:index/privateKey:PrivateKey": {
            const key = generateKey(i.algorithm === "RSA" ? "RSA" : "ECDSA");
            return { ...key };
        }
        case "tls:index/selfSignedCert:SelfSignedCert":
            return { certPem: await createSelfSignedCert({ privateKeyPem: i.privateKeyPem, subject: i.subject ?? {}, isCaCert: i.isCaCertificate, allowedUses: i.allowedUses, validityPeriodHours: i.validityPeriodHours }), readyForRenewal: false };
        case "tls:index/certRequest:CertRequest":
            return { certRequestPem: await createCertRequest({ privateKeyPem: i.privateKeyPem, subject: i.subject ?? {}, dnsNames: i.dnsNames, ipAddresses: i.ipAddresses }) };
        case "tls:index/locallySignedCert:LocallySignedCert":
            return { certPem: await signCertRequest({ certRequestPem: i.certRequestPem, caCertPem: i.caCertPem, caPrivateKeyPem: i.caPrivateKeyPem, allowedUses: i.allowedUses, validityPeriodHours: i.validityPeriodHours }), readyForRenewal: false };
        case "random:index/randomString:RandomString":
        case "random:index/randomPassword:RandomPassword":
            return { result: randomText(i.length, i) };
        case "random:index/randomBytes:RandomBytes": {
            const b = randomBytes(i.length);
            return { base64: b.toString("base64"), hex: b.toString("hex") };
        }
        default:
            return {};
    }
}

const recorded: Recorded[] = [];
const byName = new Map<string, Recorded>();

/** Installs the mocks and returns the list that every registered resource is appended to. */
export async function startMocks(): Promise<Recorded[]> {
    recorded.length = 0;
    byName.clear();
    await pulumi.runtime.setMocks({
        async newResource(args: pulumi.runtime.MockResourceArgs) {
            const inputs = unwrap(args.inputs);
            const rec = byName.get(args.name);
            if (rec) {
                rec.inputs = inputs;
                rec.secretInputs = Object.keys(args.inputs).filter((k) => isSecretValue(args.inputs[k]));
            }
            return { id: `${args.name}-id`, state: { ...inputs, ...(await outputsFor(args.type, args.name, inputs)) } };
        },
        call(args: pulumi.runtime.MockCallArgs) {
            return args.inputs;
        },
    }, "kubeha", "test", false);
    return recorded;
}

export function promiseOf<T>(o: pulumi.Output<T>): Promise<T> {
    return new Promise((resolve) => o.apply(resolve));
}

/** Waits until every resource registered so far has been through newResource. */
export async function settled(recorded: Recorded[]): Promise<void> {
    for (let i = 0; i < 200 && recorded.some((r) => !r.type.startsWith("kubeha:") && Object.keys(r.inputs).length === 0); i++) {
        await new Promise((r) => setTimeout(r, 25));
    }
}

/**
 * Runs `program` inside a root Stack (as `pulumi up` does), recording every resource with its
 * parent and dependsOn, which the mock monitor does not pass on, through a stack transformation.
 */
export async function runProgram<T>(program: () => T): Promise<T> {
    let result: T | undefined;
    await pulumi.runtime.runInPulumiStack(async () => {
        pulumi.runtime.registerStackTransformation((args) => {
            const deps = args.opts.dependsOn;
            const list = (Array.isArray(deps) ? deps : deps ? [deps] : []) as unknown as { __name?: string }[];
            const rec: Recorded = {
                type: args.type, name: args.name, inputs: {}, secretInputs: [],
                parent: (args.opts.parent as unknown as { __name?: string } | undefined)?.__name,
                dependsOn: list.map((r) => r.__name ?? "?"),
            };
            recorded.push(rec);
            byName.set(args.name, rec);
            return undefined;
        });
        result = program();
        return {};
    });
    return result as T;
}

/** The Cluster program for HA_RAW with `overrides`, run under the mocks: every resource it creates. */
export async function buildCluster(overrides: RawConfig = {}): Promise<Recorded[]> {
    const recorded = await startMocks();
    const { Cluster } = await import("../components/cluster");
    const cluster = await runProgram(() => new Cluster("kubeha", { spec: specOf(HA_RAW, overrides) }));
    await promiseOf(cluster.kubeconfig);
    await settled(recorded);
    return [...recorded];
}
