// etcd role-based access control keyed on client-certificate CNs. etcd runs with
// --client-cert-auth, so once auth is enabled it takes the CN of a client's certificate as the user
// name: each etcd client certificate of the table in pki/certlist.ts gets exactly the access it
// needs. Without this, the flanneld certificate on every node could read and write all of etcd,
// kube-apiserver's /registry (every Secret) included.
import { CERT_ROWS } from "../pki/certlist";
import { ClusterSpec } from "../spec/types";
import { etcdctl, etcdEndpoints } from "./etcd";
import { shellQuote } from "./shell";

export type EtcdPermissionType = "read" | "write" | "readwrite";

/** A key-prefix permission (`etcdctl role grant-permission --prefix=true <role> <type> <prefix>`). */
export interface EtcdPermission {
    type: EtcdPermissionType;
    prefix: string;
}

export interface EtcdRole {
    name: string;
    /**
     * Key permissions. The built-in role `root` lists none: etcd lets it do everything, the admin
     * operations (auth and member management, compaction, snapshots, defragmentation) included.
     */
    permissions: (s: ClusterSpec) => EtcdPermission[];
}

export const ETCD_ROLES: { readonly root: EtcdRole; readonly flanneld: EtcdRole } = {
    root: { name: "root", permissions: () => [] },
    flanneld: {
        name: "flanneld",
        // flanneld's network config (<prefix>/config) and subnet leases (<prefix>/subnets/...); none
        // in kube-subnet-mgr mode, where flanneld keeps its leases in Node objects, not in etcd.
        permissions: (s) => s.network.flannelMode === "etcd" ? [{ type: "readwrite", prefix: `${s.network.flannelEtcdPrefix}/` }] : [],
    },
};

export interface EtcdAuthUserRow {
    /** The etcd user: `root`, or the CN of the certificate of this CERT_ROWS row. */
    user: { builtin: "root" } | { certRow: string };
    roles: readonly EtcdRole[];
    why: string;
}

/** Who may do what in etcd: user -> role(s) -> permissions. */
export const ETCD_AUTH_USERS: readonly EtcdAuthUserRow[] = [
    { user: { builtin: "root" }, roles: [ETCD_ROLES.root], why: "etcd refuses `auth enable` without a user root holding the role root; it has no password and no certificate carries its name" },
    { user: { certRow: "apiserver-etcd-client" }, roles: [ETCD_ROLES.root], why: "kube-apiserver: all of its /registry, and compaction (an admin operation)" },
    { user: { certRow: "etcd-healthcheck-client" }, roles: [ETCD_ROLES.root], why: "health checks, snapshot backups (an admin operation), flannel's network config, and this script" },
    { user: { certRow: "flanneld" }, roles: [ETCD_ROLES.flanneld], why: "flanneld on every master and node: its network config and subnet leases only" },
];

export interface EtcdAuthUser {
    /** etcd user name: the certificate's CN (or root). */
    name: string;
    /** The CERT_ROWS row whose certificate authenticates as this user. */
    certRow?: string;
    roles: { name: string; permissions: EtcdPermission[] }[];
    why: string;
}

/** The CN of a CERT_ROWS row's certificate: one etcd-ca client certificate shared by its hosts. */
function certUserName(spec: ClusterSpec, rowName: string): string {
    const row = CERT_ROWS.find((r) => r.name === rowName);
    if (!row) throw new Error(`pki/certlist.ts has no certificate row ${rowName}, which render/etcd-auth.ts gives etcd access`);
    if (row.signer !== "etcd-ca" || !row.usages.includes("client_auth") || row.scope !== "one") {
        throw new Error(`pki/certlist.ts row ${rowName} must be one client certificate (client_auth) signed by etcd-ca: etcd takes its CN as the user name`);
    }
    return row.commonName(row.hosts(spec)[0] ?? spec.masters[0]);
}

/** ETCD_AUTH_USERS for one cluster: user names from the certificate table, permissions resolved. */
export function etcdAuthUsers(spec: ClusterSpec): EtcdAuthUser[] {
    const users = ETCD_AUTH_USERS.map((row): EtcdAuthUser => ({
        name: "builtin" in row.user ? row.user.builtin : certUserName(spec, row.user.certRow),
        ...("certRow" in row.user ? { certRow: row.user.certRow } : {}),
        roles: row.roles.map((r) => ({ name: r.name, permissions: r.permissions(spec) })),
        why: row.why,
    }));
    const seen = new Set<string>();
    for (const u of users) {
        if (seen.has(u.name)) throw new Error(`two etcd users are named ${u.name}: every etcd client certificate in pki/certlist.ts needs its own CN`);
        if (!/^[A-Za-z0-9:._@-]+$/.test(u.name)) throw new Error(`etcd user name ${JSON.stringify(u.name)} (a certificate CN) must be letters, digits and : . _ @ -`);
        seen.add(u.name);
    }
    return users;
}

/** The end of the key range etcd grants for a prefix (clientv3.GetPrefixRangeEnd). */
export function prefixRangeEnd(prefix: string): string {
    const b = Buffer.from(prefix, "utf8");
    for (let i = b.length - 1; i >= 0; i--) {
        if (b[i] < 0xff) {
            const end = Buffer.from(b.subarray(0, i + 1));
            end[i]++;
            return end.toString("latin1");
        }
    }
    return "\x00";
}

/** What `etcdctl role get <role>` prints (etcd 3.4 to 3.6) for exactly these permissions, leading whitespace trimmed. */
function roleGetText(role: string, perms: EtcdPermission[]): string {
    const sorted = [...perms].sort((a, b) => Buffer.compare(Buffer.from(a.prefix), Buffer.from(b.prefix)));
    const line = (p: EtcdPermission) => `[${p.prefix}, ${prefixRangeEnd(p.prefix)}) (prefix ${p.prefix})`;
    return [
        `Role ${role}`,
        "KV Read:", ...sorted.filter((p) => p.type !== "write").map(line),
        "KV Write:", ...sorted.filter((p) => p.type !== "read").map(line),
    ].join("\n");
}


/**
 * Idempotent POSIX sh, run as root on one master: creates the roles and the password-less users of
 * ETCD_AUTH_USERS, repairs drift (missing or extra roles of these users, other permissions of
 * their roles), then enables auth. Prints each change, or one "ok" line when there was none.
 * Users it does not manage are left alone. `etcdctlCommand` must authenticate as a root user
 * once auth is on (the default: the healthcheck client certificate). etcdctl's user and role
 * commands wait forever for an etcd without quorum, so each call is cut at `timeoutSeconds`.
 */
export function renderEtcdAuthScript(spec: ClusterSpec, etcdctlCommand: string = etcdctl(etcdEndpoints(spec)), timeoutSeconds = 30): string {
    const users = etcdAuthUsers(spec);
    const roles = new Map<string, EtcdPermission[]>();
    for (const r of users.flatMap((u) => u.roles)) roles.set(r.name, r.permissions);
    const lines: string[] = [];
    for (const [name, perms] of roles) {
        if (name === "root") {
            lines.push(`ensure_role root`);
        } else {
            lines.push(`ensure_role ${shellQuote(name)} ${shellQuote(roleGetText(name, perms))}${perms.map((p) => ` ${p.type}:${shellQuote(p.prefix)}`).join("")}`);
        }
    }
    for (const u of users) lines.push(`ensure_user ${shellQuote(u.name)} ${shellQuote(u.roles.map((r) => r.name).join(" "))}`);

    return `#!/bin/sh
# Managed by kubeha: etcd users for the client certificates' CNs, their roles, then auth enabled.
# Run again, it changes nothing and prints one "ok" line.
set -eu
ectl() { timeout ${timeoutSeconds} ${etcdctlCommand} "$@"; }
changed=0
say() { echo "$*"; changed=1; }
fail() { echo "etcd auth: $*" >&2; exit 1; }
# call ARGS...: etcdctl, its output in $out (without its client-side JSON log lines), its status returned.
call() {
  rc=0
  out=$(ectl "$@" 2>&1) || rc=$?
  if [ "$rc" = 124 ]; then out="no answer from etcd within ${timeoutSeconds}s"; fi
  out=$(printf '%s\\n' "$out" | grep -v '^{"level"' || true)
  return "$rc"
}
# run ARGS...: call, stopping the script on any error.
run() { call "$@" || fail "etcdctl $*: $out"; }
# add user|role NAME [ARGS...]: creates it; a concurrent creation ("already exists") is no error.
add() {
  kind=$1; shift
  if call "$kind" add "$@"; then say "created $kind $1"; return 0; fi
  case $out in *"name already exists"*) ;; *) fail "etcdctl $kind add $*: $out" ;; esac
}
run user list; users=$out
run role list; roles=$out
listed() { printf '%s\\n' "$1" | grep -qxF -- "$2"; }

# ensure_role NAME [WANT PERM...]: the role exists; with WANT (its \`role get\`, indentation trimmed)
# it has exactly the permissions PERM (type:prefix), else it is recreated with them.
ensure_role() {
  name=$1; shift
  if listed "$roles" "$name"; then
    [ $# -gt 0 ] || return 0
    run role get "$name"
    [ "$(printf '%s\\n' "$out" | sed 's/^[[:space:]]*//')" = "$1" ] && return 0
    run role delete "$name"
    say "deleted role $name: its permissions were not kubeha's; it is recreated with them"
    roles=$(printf '%s\\n' "$roles" | grep -vxF -- "$name" || true)
  fi
  add role "$name"
  [ $# -gt 0 ] && shift
  for perm in "$@"; do
    run role grant-permission --prefix=true "$name" "\${perm%%:*}" "\${perm#*:}"
    say "granted role $name \${perm%%:*} on the key prefix \${perm#*:}"
  done
}

# ensure_user NAME ROLES: the user exists (no password: it authenticates by certificate CN) and
# holds exactly ROLES (space-separated).
ensure_user() {
  if ! listed "$users" "$1"; then add user "$1" --no-password; fi
  run user get "$1"
  have=$(printf '%s\\n' "$out" | sed -n 's/^Roles:[[:space:]]*//p')
  for r in $2; do
    case " $have " in *" $r "*) ;; *) run user grant-role "$1" "$r"; say "granted role $r to user $1" ;; esac
  done
  for r in $have; do
    case " $2 " in *" $r "*) ;; *) run user revoke-role "$1" "$r"; say "revoked role $r from user $1: not kubeha's" ;; esac
  done
}

# auth_enabled: etcdctl 3.5+ says so; 3.4 has no \`auth status\` (it prints the usage of \`auth\`),
# so ask for a token as a user that does not exist: "authentication is not enabled" (etcdctl then
# carries on) or "authentication failed".
auth_enabled() {
  run auth status
  case $out in
    *"Authentication Status: true"*) return 0 ;;
    *"Authentication Status: false"*) return 1 ;;
  esac
  if call --user=kubeha-auth-probe --password=none endpoint status; then return 1; fi
  case $out in *"authentication failed"*) return 0 ;; esac
  fail "cannot tell whether etcd authentication is enabled: $out"
}

${lines.join("\n")}

if ! auth_enabled; then
  run auth enable
  say "enabled etcd authentication: clients are now the users named by their certificates' CNs"
fi
if [ "$changed" = 0 ]; then echo "ok: etcd authentication enabled, users and roles unchanged"; fi
`;
}
