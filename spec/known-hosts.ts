// OpenSSH known_hosts lookup (plain and hashed entries), so host-key checking stays on by default.
import { createHmac } from "node:crypto";

interface Entry {
    patterns: string[];
    key: string;
}

export interface KnownHosts {
    /** "ssh-ed25519 AAAA…" for the host (name or IP, optional port), or undefined. */
    get(host: string, port?: number): string | undefined;
}

function matches(pattern: string, host: string): boolean {
    if (pattern.startsWith("|1|")) {
        const [, , salt, hash] = pattern.split("|");
        return createHmac("sha1", Buffer.from(salt, "base64")).update(host).digest("base64") === hash;
    }
    return pattern === host;
}

export function parseKnownHosts(text: string): KnownHosts {
    const entries: Entry[] = [];
    for (const line of text.split("\n")) {
        const fields = line.trim().split(/\s+/);
        if (fields.length < 3 || fields[0].startsWith("#") || fields[0].startsWith("@")) continue;
        entries.push({ patterns: fields[0].split(","), key: `${fields[1]} ${fields[2]}` });
    }
    return {
        get(host: string, port = 22): string | undefined {
            const name = port === 22 ? host : `[${host}]:${port}`;
            // Prefer ed25519 like OpenSSH's default order, else the first key listed.
            const found = entries.filter((e) => e.patterns.some((p) => matches(p, name)));
            return (found.find((e) => e.key.startsWith("ssh-ed25519 ")) ?? found[0])?.key;
        },
    };
}
