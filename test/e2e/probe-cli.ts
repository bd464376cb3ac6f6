// The probe's process (see probe.ts). Two ways in:
//   forked by startProbe:  probe-cli.ts --ipc '<ProbeOptions JSON>'   (messages: probe.ts ToChild/FromChild)
//   by hand on the lab:    npx ts-node --transpile-only test/e2e/probe-cli.ts --kubeconfig ~/.cache/kubeha/lab/admin.conf \
//                              [--label L] [--interval-ms 300] [--timeout-ms 2000] [--nodes-interval-ms 2000] [--seconds N]
//     runs until Ctrl-C / SIGTERM (or N seconds), prints the ProbeResult as JSON on stdout;
//     exit 0 without failures, 1 with any, 2 when it could not start.
import { FromChild, ProbeOptions, readKubeconfig, RunningProbe, startProbeInProcess, ToChild } from "./probe";

function fromArgs(argv: string[]): { opts: ProbeOptions; seconds?: number } {
    const opts: Partial<ProbeOptions> = { label: "probe" };
    let seconds: number | undefined;
    const num = (flag: string, v: string | undefined) => {
        const n = Number(v);
        if (!v || !Number.isFinite(n) || n <= 0) throw new Error(`${flag} needs a positive number, got ${JSON.stringify(v)}`);
        return n;
    };
    for (let i = 0; i < argv.length; i++) {
        const flag = argv[i];
        const v = argv[i + 1];
        switch (flag) {
            case "--kubeconfig": opts.kubeconfig = v; i++; break;
            case "--label": opts.label = v; i++; break;
            case "--interval-ms": opts.intervalMs = num(flag, v); i++; break;
            case "--timeout-ms": opts.timeoutMs = num(flag, v); i++; break;
            case "--nodes-interval-ms": opts.nodesIntervalMs = num(flag, v); i++; break;
            case "--config-map": opts.configMap = v; i++; break;
            case "--seconds": seconds = num(flag, v); i++; break;
            default: throw new Error(`unknown argument ${flag}`);
        }
    }
    if (!opts.kubeconfig) throw new Error("--kubeconfig <path> is required");
    return { opts: opts as ProbeOptions, seconds };
}

function begin(opts: ProbeOptions): RunningProbe {
    const { kubeconfig, ...rest } = opts;
    return startProbeInProcess(readKubeconfig(kubeconfig), rest);
}

function ipcMode(json: string): void {
    const send = (m: FromChild) => new Promise<void>((r) => process.send!(m, undefined, undefined, () => r()));
    const probe = begin(JSON.parse(json) as ProbeOptions);
    probe.ready.then(() => send({ type: "ready" }), (e: Error) => send({ type: "setup-failed", error: e.message }));
    process.on("message", async (m: ToChild) => {
        if (m?.type !== "stop") return;
        const result = await probe.stop();
        await send({ type: "result", result });
        process.disconnect();
        process.exit(0);
    });
    // The parent went away without stopping us: nobody is left to report to.
    process.on("disconnect", () => process.exit(0));
}

function handMode(argv: string[]): void {
    let parsed: ReturnType<typeof fromArgs>;
    try {
        parsed = fromArgs(argv);
    } catch (e) {
        console.error(`probe-cli: ${(e as Error).message}`);
        process.exit(2);
    }
    const probe = begin(parsed.opts);
    probe.ready.then(() => console.error(`probe ${parsed.opts.label}: running (Ctrl-C to stop and report)`), (e: Error) => {
        console.error(`probe ${parsed.opts.label}: ${e.message}`);
        process.exit(2);
    });
    const finish = async () => {
        const r = await probe.stop();
        process.stdout.write(JSON.stringify(r, null, 1) + "\n");
        process.exit(r.setupError ? 2 : r.failures.length + r.failuresNotListed > 0 ? 1 : 0);
    };
    process.once("SIGINT", finish);
    process.once("SIGTERM", finish);
    if (parsed.seconds) setTimeout(finish, parsed.seconds * 1000);
}

if (process.argv[2] === "--ipc" && process.send) ipcMode(process.argv[3]);
else handMode(process.argv.slice(2));
