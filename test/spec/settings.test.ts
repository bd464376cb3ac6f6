import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { Setting, SETTINGS } from "../../spec/settings";

describe("settings table", () => {
    const project = parse(readFileSync(`${__dirname}/../../Pulumi.yaml`, "utf8"));

    it("Pulumi.yaml declares every setting with its type, default and description, and nothing else", () => {
        assert.deepEqual(Object.keys(project.config).sort(), Object.keys(SETTINGS).sort());
        for (const [key, s0] of Object.entries(SETTINGS)) {
            const s = s0 as Setting;
            const decl = project.config[key];
            assert.equal(decl.type, s.type, key);
            assert.equal(decl.description, s.description, key);
            assert.deepEqual(decl.default, s.default, key);
            assert.equal(decl.secret, undefined, `${key}: Pulumi rejects a secret key that has a default`);
            if (s.type === "array") assert.deepEqual(decl.items, { type: "string" }, key);
        }
    });

    it("the README's config reference names every setting", () => {
        const readme = readFileSync(`${__dirname}/../../README.md`, "utf8");
        const missing = Object.keys(SETTINGS).filter((k) => !readme.includes(`\`${k}\``));
        assert.deepEqual(missing, [], "add them to README.md's config reference");
    });

    it("only secret-capable settings are secret", () => {
        assert.deepEqual(Object.entries(SETTINGS).filter(([, s]) => (s as Setting).secret).map(([k]) => k), ["sshPrivateKey"]);
    });
});
