// The two scripts kubeha runs on a host, and their line protocol. Both are fixed POSIX sh (they
// never contain a value from the config); what to look at or do arrives on stdin, one request per
// line, arbitrary text base64-encoded. So file contents (keys included) travel only on stdin,
// never on a command line, and nothing here echoes them.
//   PROBE reads what is there: files and binaries (sha256, mode, owner), units (active, enabled,
//   the digest kubeha last applied), the owners of shared files, checks (who holds the VIP).
//   APPLY does what the plan says, in order, and stops at the first failure with one
//   "KUBEHA-FAIL <base64 message>" line: the unit's state and its last journal lines, never a script.
import { STATE_DIR } from "../render/paths";

// Under $S (STATE_DIR; KUBEHA_STATE_DIR overrides it for tests):
//   applied/<group>/<step>  the digest last applied
//   owners/<group>          the paths the group manages here, one per line (shared files have several)
//   binaries/<hash of path> "<source> <sha256 installed> <size.mtime.inode>" per installed binary
//   staging/<sha256>        uploads waiting to be installed
//   downloads/<sha256>      release downloads

/** Receives an upload on stdin into staging/<sha256>, where an install request finds it. */
export function uploadScript(sha256: string): string {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error(`not a sha256: ${sha256}`);
    return `${COMMON_STATE}\numask 077\nmkdir -p "$S/staging" && cat >"$S/staging/${sha256}.part" && mv -f "$S/staging/${sha256}.part" "$S/staging/${sha256}"`;
}

export const SAFE_PATH = /^\/[A-Za-z0-9._/@+:-]+$/;
export const SAFE_NAME = /^[A-Za-z0-9._@:-]+$/;

const COMMON_STATE = `S=\${KUBEHA_STATE_DIR:-${STATE_DIR}}`;
const COMMON = `${COMMON_STATE}
binrec() { printf '%s/binaries/%s' "$S" "$(printf '%s' "$1" | sha256sum | cut -c1-32)"; }
b64() { printf '%s' "$1" | base64 -d; }`;

export const PROBE_SCRIPT = `${COMMON}
while IFS=' ' read -r op a b; do
  case $op in
  file)
    if [ -f "$a" ]; then
      printf 'F %s %s %s %s\\n' "$a" "$(sha256sum "$a" | cut -d' ' -f1)" "$(stat -c %a "$a")" "$(stat -c %U:%G "$a")"
    else
      printf 'F %s - - -\\n' "$a"
    fi ;;
  bin)
    if [ -f "$a" ]; then
      src=- inst=- st=- rec=$(binrec "$a")
      [ -f "$rec" ] && read -r src inst st <"$rec"
      # Unchanged size, mtime and inode since kubeha installed it: the recorded digest holds.
      if [ "$st" = "$(stat -c %s.%Y.%i "$a")" ]; then now=$inst; else now=$(sha256sum "$a" | cut -d' ' -f1); fi
      printf 'B %s %s %s %s\\n' "$a" "$now" "$src" "$inst"
    else
      printf 'B %s - - -\\n' "$a"
    fi ;;
  unit)
    act=- en=-
    for kv in $(systemctl show -p ActiveState -p UnitFileState "$a" 2>/dev/null); do
      case $kv in ActiveState=?*) act=\${kv#*=} ;; UnitFileState=?*) en=\${kv#*=} ;; esac
    done
    rec=$(cat "$S/applied/$b" 2>/dev/null) || rec=
    printf 'U %s %s %s %s\\n' "$a" "$act" "$en" "\${rec:--}"
    ;;
  script)
    rec=$(cat "$S/applied/$b" 2>/dev/null) || rec=
    printf 'S %s %s\\n' "$a" "\${rec:--}" ;;
  staged)
    if [ -f "$S"/staging/"$a" ]; then printf 'T %s\\n' "$a"; fi ;;
  owners)
    for f in "$S"/owners/*; do
      [ -f "$f" ] || continue
      while read -r p; do printf 'O %s %s\\n' "\${f##*/}" "$p"; done <"$f"
    done ;;
  check)
    if sh -c "$(b64 "$b")" >/dev/null 2>&1; then printf 'C %s 0\\n' "$a"; else printf 'C %s 1\\n' "$a"; fi ;;
  esac
done
echo END`;

export const APPLY_SCRIPT = `${COMMON}
umask 077
fail() { printf 'KUBEHA-FAIL %s\\n' "$(printf '%s' "$1" | base64 | tr -d '\\n')"; exit 1; }
unitdiag() {
  printf 'state: %s\\n' "$(systemctl show -p ActiveState -p SubState -p Result -p ExecMainStatus -p NRestarts "$1" 2>/dev/null | tr '\\n' ' ')"
  printf 'last log lines (journalctl -u %s):\\n' "$1"
  journalctl -u "$1" -n 15 --no-pager -o short-iso 2>/dev/null | sed 's/^/  /'
}
unitcmd() { # systemctl verb unit: a failure reports the unit's state and log
  systemctl "$@" >/dev/null 2>&1 || fail "systemctl $1 $2 failed
$(unitdiag "$2")"
}
installed() { # path source: record what was installed
  mkdir -p "$S"/binaries
  printf '%s %s %s\\n' "$2" "$(sha256sum "$1" | cut -d' ' -f1)" "$(stat -c %s.%Y.%i "$1")" >"$(binrec "$1")"
  echo "installed $1"
}
place() { # tmp path: replace path with tmp (a new inode: a running binary keeps its own)
  mkdir -p "\${2%/*}" && chmod 0755 "$1" && mv -f "$1" "$2"
}
rmparents() { rmdir -p --ignore-fail-on-non-empty "\${1%/*}" 2>/dev/null || true; }
while IFS=' ' read -r op a b c d; do
  case $op in
  write) # path mode owner base64
    mkdir -p "\${a%/*}"
    tmp=$(mktemp "\${a%/*}/.kubeha.XXXXXX")
    b64 "$d" >"$tmp" && chmod "$b" "$tmp" && chown "$c" "$tmp" || { rm -f "$tmp"; fail "cannot write $a"; }
    if [ -f "$a" ] && cmp -s "$tmp" "$a" && [ "$(stat -c %a "$a")" = "\${b#0}" ] && [ "$(stat -c %U:%G "$a")" = "$c" ]; then
      rm -f "$tmp"
    else
      mv -f "$tmp" "$a"; echo "wrote $a"
    fi ;;
  rm) # path
    if [ -e "$a" ] || [ -L "$a" ]; then rm -f "$a"; echo "removed $a"; fi
    rm -f "$(binrec "$a")"; rmparents "$a" ;;
  rmtree) # path: a mount point (a disk of its own) is emptied, not removed
    if mountpoint -q "$a" 2>/dev/null; then find "$a" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
    elif [ -e "$a" ]; then rm -rf "$a"; echo "removed $a"; fi
    rmparents "$a" ;;
  own) mkdir -p "$S"/owners; grep -qxF "$b" "$S"/owners/"$a" 2>/dev/null || echo "$b" >>"$S"/owners/"$a" ;;
  disown)
    f="$S"/owners/"$a"
    if [ -f "$f" ]; then grep -vxF "$b" "$f" >"$f.new" || true; mv -f "$f.new" "$f"; [ -s "$f" ] || rm -f "$f"; fi ;;
  install) # path source(sha256) staged-sha
    up="$S"/staging/$c
    got=$(sha256sum "$up" 2>/dev/null | cut -d' ' -f1)
    if [ "$got" != "$b" ]; then rm -f "$up"; fail "the upload of $a does not match sha256 $b (got \${got:-nothing}); it was removed, so the next pulumi up uploads it again"; fi
    place "$up" "$a" || fail "cannot install $a"
    installed "$a" "$b" ;;
  fetch) # path source url archive-sha256 [member]
    mkdir -p "$S"/downloads
    file="$S"/downloads/$d
    if ! echo "$d  $file" | sha256sum -c --status 2>/dev/null; then
      curl -fsSL --retry 3 --connect-timeout 10 -o "$file.part" "$c" || { rm -f "$file.part"; fail "cannot download $c"; }
      echo "$d  $file.part" | sha256sum -c --status || { rm -f "$file.part"; fail "$c does not match its published sha256 $d"; }
      mv -f "$file.part" "$file"
    fi
    read -r member
    mkdir -p "\${a%/*}"
    tmp=$(mktemp "\${a%/*}/.kubeha.XXXXXX")
    if [ "$member" = - ]; then cp "$file" "$tmp"; else tar -xzf "$file" -O "$member" >"$tmp"; fi || { rm -f "$tmp"; fail "cannot extract $member from $c"; }
    place "$tmp" "$a" || fail "cannot install $a"
    installed "$a" "$b" ;;
  daemon-reload) systemctl daemon-reload || fail "systemctl daemon-reload failed" ;;
  enable) unitcmd enable "$a" ;;
  disable) systemctl disable "$a" >/dev/null 2>&1 || true ;;
  start) unitcmd start --no-block "$a"; echo "started $a" ;;
  restart) unitcmd restart "$a"; echo "restarted $a" ;;
  reload) unitcmd reload "$a"; echo "reloaded $a" ;;
  stop) if systemctl is-active -q "$a" 2>/dev/null; then systemctl stop "$a" >/dev/null 2>&1 || true; echo "stopped $a"; fi ;;
  record) mkdir -p "$S/applied/\${a%/*}"; printf '%s\\n' "$b" >"$S/applied/$a" ;;
  forget) rm -f "$S/applied/$a"; rmdir "$S/applied/\${a%/*}" 2>/dev/null || true ;;
  gate) # unit|- timeout what check
    what=$(b64 "$c"); check=$(b64 "$d")
    deadline=$(( $(date +%s) + b ))
    while :; do
      if out=$(sh -c "$check" 2>&1); then echo "$what: healthy"; break; fi
      if [ "$(date +%s)" -ge "$deadline" ]; then
        msg="$what: not healthy after \${b}s"
        [ "$a" = - ] || msg="$msg
$(unitdiag "$a")"
        fail "$msg
last check output:
$(printf '%s\\n' "$out" | tail -n 8 | sed 's/^/  /')"
      fi
      sleep 1
    done ;;
  run) # name script
    if out=$(sh -c "$(b64 "$b")" 2>&1); then
      [ -z "$out" ] || printf '%s\\n' "$out" | sed "s|^|$a: |"
    else
      fail "$a failed:
$(printf '%s\\n' "$out" | tail -n 30)"
    fi ;;
  '') ;;
  *) fail "unknown request $op" ;;
  esac
done
echo END`;

// ---------------------------------------------------------------- requests

const b64 = (s: string) => Buffer.from(s).toString("base64");

function safePath(p: string): string {
    if (!SAFE_PATH.test(p)) throw new Error(`refusing the unsafe path ${JSON.stringify(p)}`);
    return p;
}
function safeName(n: string): string {
    if (!SAFE_NAME.test(n)) throw new Error(`refusing the unsafe name ${JSON.stringify(n)}`);
    return n;
}

export type ProbeRequest =
    | { op: "file" | "bin"; path: string }
    | { op: "unit"; unit: string; record: string }
    | { op: "script"; name: string; record: string }
    | { op: "staged"; sha256: string }
    | { op: "owners" }
    | { op: "check"; name: string; script: string };

export function encodeProbe(requests: ProbeRequest[]): string {
    return requests.map((r) => {
        switch (r.op) {
            case "file": case "bin": return `${r.op} ${safePath(r.path)}`;
            case "unit": return `unit ${safeName(r.unit)} ${r.record.split("/").map(safeName).join("/")}`;
            case "script": return `script ${safeName(r.name)} ${r.record.split("/").map(safeName).join("/")}`;
            case "staged": return `staged ${safeName(r.sha256)}`;
            case "owners": return "owners";
            case "check": return `check ${safeName(r.name)} ${b64(r.script)}`;
        }
    }).join("\n") + "\n";
}

export interface ObservedFile { sha256?: string; mode?: string; owner?: string }
export interface ObservedBinary { sha256?: string; source?: string; installedSha256?: string }
export interface ObservedUnit { active?: string; enabled?: string; applied?: string }
export interface Observed {
    files: Record<string, ObservedFile>;
    binaries: Record<string, ObservedBinary>;
    units: Record<string, ObservedUnit>;
    scripts: Record<string, { applied?: string }>;
    staged: string[];
    /** path -> the groups that manage it on this host. */
    owners: Record<string, string[]>;
    checks: Record<string, boolean>;
}

const dash = (v: string | undefined) => (v === undefined || v === "-" || v === "" ? undefined : v);
const octal = (v: string | undefined) => (v === undefined ? undefined : v.padStart(4, "0"));

export function parseProbe(stdout: string): Observed {
    const o: Observed = { files: {}, binaries: {}, units: {}, scripts: {}, staged: [], owners: {}, checks: {} };
    const lines = stdout.split("\n");
    if (!lines.includes("END")) throw new Error(`the probe ended early: ${stdout.slice(-300)}`);
    for (const line of lines) {
        const [kind, ...f] = line.split(" ");
        switch (kind) {
            case "F": o.files[f[0]] = { sha256: dash(f[1]), mode: octal(dash(f[2])), owner: dash(f[3]) }; break;
            case "B": o.binaries[f[0]] = { sha256: dash(f[1]), source: dash(f[2]), installedSha256: dash(f[3]) }; break;
            case "U": o.units[f[0]] = { active: dash(f[1]), enabled: dash(f[2]), applied: dash(f[3]) }; break;
            case "S": o.scripts[f[0]] = { applied: dash(f[1]) }; break;
            case "T": o.staged.push(f[0]); break;
            case "O": (o.owners[f.slice(1).join(" ")] ??= []).push(f[0]); break;
            case "C": o.checks[f[0]] = f[1] === "0"; break;
        }
    }
    return o;
}

export type ApplyRequest =
    | { op: "write"; path: string; mode: string; owner: string; content: string }
    | { op: "rm" | "rmtree"; path: string }
    | { op: "own" | "disown"; group: string; path: string }
    | { op: "install"; path: string; source: string; staged: string }
    | { op: "fetch"; path: string; source: string; url: string; sha256: string; member?: string }
    | { op: "daemon-reload" }
    | { op: "enable" | "disable" | "start" | "restart" | "reload" | "stop"; unit: string }
    | { op: "record"; record: string; digest: string }
    | { op: "forget"; record: string }
    | { op: "gate"; unit?: string; gate: { what: string; check: string; timeoutSeconds: number } }
    | { op: "run"; name: string; script: string };

const record = (r: string) => r.split("/").map(safeName).join("/");

export function encodeApply(requests: ApplyRequest[]): string {
    return requests.map((r) => {
        switch (r.op) {
            case "write":
                if (!/^0[0-7]{3}$/.test(r.mode)) throw new Error(`${r.path}: mode ${r.mode} is not octal like 0644`);
                if (!/^[a-z_][a-z0-9_-]*:[a-z_][a-z0-9_-]*$/.test(r.owner)) throw new Error(`${r.path}: owner ${r.owner} is not user:group`);
                return `write ${safePath(r.path)} ${r.mode} ${r.owner} ${b64(r.content)}`;
            case "rm": case "rmtree": return `${r.op} ${safePath(r.path)}`;
            case "own": case "disown": return `${r.op} ${safeName(r.group)} ${safePath(r.path)}`;
            case "install": return `install ${safePath(r.path)} ${safeName(r.source)} ${safeName(r.staged)}`;
            case "fetch":
                if (!/^https?:\/\/\S+$/.test(r.url)) throw new Error(`refusing the download URL ${JSON.stringify(r.url)}`);
                if (r.member !== undefined && (!/^[A-Za-z0-9._/+-]+$/.test(r.member) || r.member.split("/").includes(".."))) {
                    throw new Error(`refusing the archive member ${JSON.stringify(r.member)}`);
                }
                // The member goes on a line of its own: the fetch request reads it.
                return `fetch ${safePath(r.path)} ${safeName(r.source)} ${r.url} ${safeName(r.sha256)}\n${r.member ?? "-"}`;
            case "daemon-reload": return "daemon-reload";
            case "enable": case "disable": case "start": case "restart": case "reload": case "stop": return `${r.op} ${safeName(r.unit)}`;
            case "record": return `record ${record(r.record)} ${safeName(r.digest)}`;
            case "forget": return `forget ${record(r.record)}`;
            case "gate": return `gate ${r.unit ? safeName(r.unit) : "-"} ${Math.max(1, Math.round(r.gate.timeoutSeconds))} ${b64(r.gate.what)} ${b64(r.gate.check)}`;
            case "run": return `run ${safeName(r.name)} ${b64(r.script)}`;
        }
    }).join("\n") + "\n";
}

/** The lines APPLY printed: what it did, and the failure message if it stopped. */
export function parseApply(stdout: string): { done: string[]; failure?: string; complete: boolean } {
    const done: string[] = [];
    let failure: string | undefined;
    let complete = false;
    for (const line of stdout.split("\n")) {
        if (line.startsWith("KUBEHA-FAIL ")) failure = Buffer.from(line.slice(12), "base64").toString("utf8").trimEnd();
        else if (line === "END") complete = true;
        else if (line.trim()) done.push(line);
    }
    return { done, failure, complete };
}
