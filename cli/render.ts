// npm run render -- <stack> <dir>: write every file each host would receive to <dir>/<host>/<path>,
// through the same render functions the components use. Private keys are placeholders.
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { loadStack } from "./load";
import { previewPkiMaterial } from "../pki/preview";
import { renderHostFiles } from "../render/hosts";
import { renderEtcdAuthScript } from "../render/etcd-auth";
import { addonManifests } from "../components/addons";

async function main(): Promise<void> {
    const [stack, dir] = process.argv.slice(2);
    const { spec } = loadStack(stack, "npm run render -- <stack> <dir>");
    if (!dir) {
        console.error("usage: npm run render -- <stack> <dir>");
        process.exit(2);
    }
    // The VRRP password is a Pulumi secret generated at `pulumi up`; the preview shows a placeholder.
    const files = renderHostFiles(spec, await previewPkiMaterial(spec), "PREVIEW0");
    let count = 0;
    for (const [host, list] of files) {
        for (const f of list) {
            const target = join(resolve(dir), host, f.path);
            mkdirSync(dirname(target), { recursive: true });
            writeFileSync(target, f.content);
            chmodSync(target, parseInt(f.mode, 8));
            count++;
        }
        console.log(`${host}: ${list.length} files`);
    }
    // What goes through the API or runs once rather than landing as a file: <dir>/_cluster/.
    const cluster = join(resolve(dir), "_cluster");
    mkdirSync(join(cluster, "addons"), { recursive: true });
    for (const m of addonManifests(spec)) writeFileSync(join(cluster, "addons", `${m.name}.yaml`), m.yaml);
    writeFileSync(join(cluster, "etcd-auth.sh"), renderEtcdAuthScript(spec));
    console.log(`_cluster: ${addonManifests(spec).length} add-on manifests, etcd-auth.sh`);
    console.log(`wrote ${count} files for ${files.size} hosts under ${resolve(dir)} (certificates are a preview PKI; private keys, tokens and the VRRP password are placeholders)`);
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
