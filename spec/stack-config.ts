// Raw config from the two places it lives: the Pulumi engine (the program) or a
// Pulumi.<stack>.yaml file read directly (the offline `check` and `render` commands).
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { parse } from "yaml";
import { NAMESPACE, SETTINGS } from "./settings";
import { RawConfig } from "./config";

export function expandHome(path: string): string {
    return path === "~" || path.startsWith("~/") ? homedir() + path.slice(1) : path;
}

/** Reads the known_hosts file the config names, or undefined when it cannot be read. */
export function readKnownHosts(raw: RawConfig): string | undefined {
    const path = (raw.sshKnownHostsFile as string | undefined) || (SETTINGS.sshKnownHostsFile.default as string);
    try {
        return readFileSync(expandHome(path), "utf8");
    } catch {
        return undefined;
    }
}

/** The `config:` map of Pulumi.<stack>.yaml, namespace stripped; secure values become a marker. */
export function rawConfigFromStackFile(path: string): RawConfig {
    const doc = parse(readFileSync(path, "utf8")) ?? {};
    const raw: RawConfig = {};
    for (const [key, value] of Object.entries((doc.config ?? {}) as Record<string, unknown>)) {
        const [ns, name] = key.includes(":") ? key.split(":", 2) : [NAMESPACE, key];
        if (ns !== NAMESPACE) continue;
        const isSecure = typeof value === "object" && value !== null && "secure" in value;
        raw[name] = isSecure ? "[secret]" : value;
    }
    return raw;
}

/** Unknown keys in the kubeha namespace are typos: report them. */
export function unknownKeys(raw: RawConfig): string[] {
    return Object.keys(raw).filter((k) => !(k in SETTINGS));
}
