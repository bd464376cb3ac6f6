// Rewrites the README's config reference (between the settings markers) from spec/settings.ts.
import { readFileSync, writeFileSync } from "node:fs";
import { Setting, SETTINGS } from "../spec/settings";

const fmt = (v: unknown) => v === undefined ? "required" : v === "" ? "—" : `\`${JSON.stringify(v)}\``;
const rows = ["| setting (`kubeha:`…) | type | default | meaning |", "|---|---|---|---|"];
for (const [k, s0] of Object.entries(SETTINGS)) {
    const s = s0 as Setting;
    rows.push(`| \`${k}\` | ${s.type}${s.secret ? " (secret)" : ""} | ${fmt(s.default)} | ${s.description.replace(/\|/g, "\\|")} |`);
}
const readme = readFileSync("README.md", "utf8");
const begin = readme.indexOf("<!-- settings:begin");
const end = readme.indexOf("<!-- settings:end -->");
if (begin < 0 || end < 0) throw new Error("README.md lacks the settings markers");
const head = readme.slice(0, readme.indexOf("\n", begin) + 1);
writeFileSync("README.md", head + rows.join("\n") + "\n" + readme.slice(end));
