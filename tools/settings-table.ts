// Prints the README's config reference table from spec/settings.ts.
import { Setting, SETTINGS } from "../spec/settings";
const fmt = (v: unknown) => v === undefined ? "required" : v === "" ? "—" : `\`${JSON.stringify(v)}\``;
console.log("| setting (`kubeha:`…) | type | default | meaning |\n|---|---|---|---|");
for (const [k, s0] of Object.entries(SETTINGS)) {
    const s = s0 as Setting;
    console.log(`| \`${k}\` | ${s.type}${s.secret ? " (secret)" : ""} | ${fmt(s.default)} | ${s.description.replace(/\|/g, "\\|")} |`);
}
