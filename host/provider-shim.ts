// What Pulumi serializes into every HostGroup and HostScript: a few lines that load host/provider.ts
// in the dynamic-provider process, instead of a serialized copy of kubeha's modules (Pulumi's closure
// serializer cannot capture them, and a copy in every resource's state would be large and stale).
// The provider process is plain Node: TypeScript is loaded through the project's ts-node, as the
// Pulumi Node.js runtime loads the program itself.
//
// The module is looked up where the program ran from, then in the provider process's working
// directory (the project, for a checkout that moved since the resource was created).
import type * as pulumi from "@pulumi/pulumi";
import * as path from "node:path";

const MODULE = path.join(__dirname, "provider");

type Method = "configure" | "check" | "diff" | "create" | "read" | "update" | "delete";

/** A provider whose methods run host/provider.ts's, loaded on first use. */
export function providerShim(): pulumi.dynamic.ResourceProvider {
    const captured = MODULE;
    const load = (): pulumi.dynamic.ResourceProvider => {
        const fs = require("node:fs");
        const p = require("node:path");
        const candidates = [captured, p.join(process.cwd(), "host", "provider")];
        const found = candidates.find((c: string) => fs.existsSync(`${c}.ts`) || fs.existsSync(`${c}.js`));
        if (!found) throw new Error(`kubeha: cannot find its host provider (looked for ${candidates.join(".ts and ")}.ts); run pulumi from the kubeha project directory`);
        if (fs.existsSync(`${found}.ts`) && !(process as unknown as Record<symbol, unknown>)[Symbol.for("ts-node.register.instance")]) {
            const tsnode = require(require.resolve("ts-node", { paths: [p.dirname(found)] }));
            tsnode.register({ transpileOnly: true, project: p.join(p.dirname(found), "..", "tsconfig.json") });
        }
        return require(found).hostProvider;
    };
    const call = (m: Method) => (...args: unknown[]) => {
        const impl = load() as unknown as Record<Method, (...a: unknown[]) => unknown>;
        return impl[m](...args);
    };
    return {
        configure: call("configure"),
        check: call("check"),
        diff: call("diff"),
        create: call("create"),
        read: call("read"),
        update: call("update"),
        delete: call("delete"),
    } as pulumi.dynamic.ResourceProvider;
}
