// Shared by the offline commands: read Pulumi.<stack>.yaml and validate it like the program does.
import { existsSync } from "node:fs";
import { ConfigError, loadClusterSpec, LoadResult } from "../spec/config";
import { NAMESPACE } from "../spec/settings";
import { rawConfigFromStackFile, readKnownHosts, unknownKeys } from "../spec/stack-config";

export function loadStack(stack: string | undefined, usage: string): LoadResult {
    if (!stack) {
        console.error(`usage: ${usage}`);
        process.exit(2);
    }
    const file = `Pulumi.${stack}.yaml`;
    if (!existsSync(file)) {
        console.error(`${file} not found in ${process.cwd()}: create it (see Pulumi.dev.yaml) or name another stack`);
        process.exit(2);
    }
    const raw = rawConfigFromStackFile(file);
    const unknown = unknownKeys(raw).map((k) => `${NAMESPACE}:${k}: unknown setting (typo?); see Pulumi.yaml for the list`);
    try {
        const result = loadClusterSpec(raw, { knownHosts: readKnownHosts(raw), sshAgent: !!process.env.SSH_AUTH_SOCK, strict: false });
        if (unknown.length) throw new ConfigError(unknown);
        return result;
    } catch (e) {
        if (e instanceof ConfigError) {
            const problems = [...e.problems, ...unknown.filter((u) => !e.problems.includes(u))];
            console.error(`${file}: ${new ConfigError(problems).message}`);
            process.exit(1);
        }
        throw e;
    }
}
