import { SETTINGS, Setting } from "../spec/settings";
import { stringify } from "yaml";
const config: Record<string, unknown> = {};
for (const [k, s0] of Object.entries(SETTINGS)) {
  const s = s0 as Setting;
  const d: Record<string, unknown> = { type: s.type, description: s.description };
  if (s.type === "array") d.items = { type: "string" };
  if (s.default !== undefined) d.default = s.default;
  config[k] = d;
}
process.stdout.write(stringify({ name: "kubeha", runtime: { name: "nodejs", options: { typescript: true, tsconfig: "tsconfig.pulumi.json" } }, description: "Highly available Kubernetes from official release binaries on bare Linux hosts", main: "index.ts", config }, { lineWidth: 0 }));
