/**
 * The real API (scripts/api.ts) as a child process: its own memory, its own Redis connections and nonce queues,
 * so that what several API processes share goes through Redis and the chain only. Started with
 * `node -r ts-node`, so that a signal reaches the service itself, not npx.
 */
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { hardhatDevKeys } from "./writes";

export const ROOT = path.resolve(__dirname, "..", "..");
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 50 ms until it returns something other than undefined, failing after `ms`. */
export async function until<T>(what: string, check: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = await check();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * The environment a test's child process (the API or a command) runs with: the test's chain, ledger and Redis (a
 * URL or a cluster's nodes), the Hardhat accounts as development signer keys, no deployment file, logs at warn.
 */
export function childEnv(
  target: { rpcUrl: string; ledger: string; redisUrl?: string; clusterNodes?: { host: string; port: number }[] },
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    RPC_URL: target.rpcUrl,
    ...(target.clusterNodes
      ? { REDIS_CLUSTER_NODES: target.clusterNodes.map((n) => `${n.host}:${n.port}`).join(",") }
      : { REDIS_URL: target.redisUrl ?? "", REDIS_CLUSTER_NODES: "" }),
    LEDGER_ADDRESS: target.ledger,
    DEPLOYMENT_FILE: path.join(ROOT, ".deployments", "none-for-this-test.json"),
    CODE_BUCKET_BITS: "16",
    API_HOST: "127.0.0.1",
    API_PORT: "0",
    SIGNER_DEV_KEYS: hardhatDevKeys().join(","),
    NODE_ENV: "development",
    LOG_LEVEL: "warn",
    ...extra,
  };
}

export interface ChildApi {
  proc: ChildProcess;
  url: string;
  /** The last 8,000 characters it wrote (stdout and stderr). */
  output(): string;
  /** Sends the signal (if it still runs) and waits for it to exit. */
  kill(signal: NodeJS.Signals): Promise<void>;
}

/** Every child started and not yet exited, for an `after` hook to SIGKILL. */
export const liveChildApis = new Set<ChildProcess>();

/** Starts scripts/api.ts with `env` over this process's environment; resolves once it listens. */
export async function startChildApi(env: Record<string, string>): Promise<ChildApi> {
  const proc = spawn(process.execPath, ["-r", "ts-node/register/transpile-only", "scripts/api.ts"], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  liveChildApis.add(proc);
  let out = "";
  const keep = (chunk: Buffer) => void (out = (out + chunk.toString("utf8")).slice(-8000));
  proc.stdout!.on("data", keep);
  proc.stderr!.on("data", keep);
  const exited = new Promise<void>((resolve) => proc.once("exit", () => (liveChildApis.delete(proc), resolve())));
  const url = await until(
    "the child API to listen",
    async () => {
      if (proc.exitCode !== null) throw new Error(`child API exited: ${out}`);
      const line = out.split("\n").find((l) => l.includes('"API listening"'));
      return line ? (JSON.parse(line) as { url: string }).url : undefined;
    },
    90_000,
  );
  return {
    proc,
    url,
    output: () => out,
    async kill(signal) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      await exited;
    },
  };
}

/** SIGKILLs every child API still running (an `after` hook's last resort). */
export function killChildApis(): void {
  for (const child of liveChildApis) child.kill("SIGKILL");
}
