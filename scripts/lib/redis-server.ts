/**
 * Test harness for real `redis-server` processes on free loopback ports.
 *
 * Every server gets a fresh directory under os.tmpdir(); its stdout/stderr go to `redis.log` in that
 * directory (the tail is included in start-up errors). Child processes are unref'd so a forgotten
 * `stop()` cannot keep mocha alive, and a process 'exit' handler SIGKILLs whatever is still running
 * and removes the directories, so a crashed run leaves no orphans behind.
 */
import { spawn, execFile, type ChildProcess } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";

const HOST = "127.0.0.1" as const;
const READY_TIMEOUT_MS = 10_000;
const CLUSTER_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 2_000;
const POLL_MS = 50;
const LOG_FILE = "redis.log";

export interface RedisServer {
  port: number;
  host: "127.0.0.1";
  url: string;
  dir: string;
  /** SIGTERM (SIGKILL after 2 s), then remove the directory. The server cannot be started again. */
  stop(): Promise<void>;
  /** SIGKILL then start again on the same port and dir (data from the last save/AOF if enabled) */
  restart(opts?: { downMs?: number }): Promise<void>;
  /** SIGKILL and wait for the process to exit; the directory (and any AOF) is kept. */
  kill(): Promise<void>;
  /** Start again on the same port and dir and wait until it answers PING. No-op if running. */
  start(): Promise<void>;
}

export interface RedisCluster {
  nodes: { host: "127.0.0.1"; port: number }[];
  dir: string;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------
// Orphan protection

const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let exitHandlerInstalled = false;

function installExitHandler(): void {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  process.on("exit", () => {
    for (const child of liveChildren) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
    for (const dir of liveDirs) {
      try {
        fs.rmSync(dir, { recursive: true, force: true });
      } catch {
        // best effort: the killed server may still be releasing files
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------------
// Small utilities

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Resolves when `child` has exited, or false after `timeoutMs` (the timer also keeps the event loop alive). */
function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (!isRunning(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      child.off("exit", onExit);
      resolve(!isRunning(child));
    }, timeoutMs);
    child.once("exit", onExit);
  });
}

function logTail(dir: string, lines = 30): string {
  try {
    const text = fs.readFileSync(path.join(dir, LOG_FILE), "utf8").trimEnd();
    return text === "" ? "(log is empty)" : text.split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A free TCP port on 127.0.0.1 (listen on port 0, read the port, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, HOST, () => {
      const addr = srv.address();
      if (addr === null || typeof addr === "string") {
        srv.close();
        reject(new Error(`freePort: unexpected address ${String(addr)}`));
        return;
      }
      srv.close((err) => (err ? reject(err) : resolve(addr.port)));
    });
  });
}

/** Sends an inline PING and resolves with the first reply line (e.g. "+PONG", "-LOADING ..."). */
function tcpPing(port: number, timeoutMs = 500): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: HOST, port });
    let buf = "";
    let settled = false;
    const finish = (err: Error | null, line?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(line ?? "");
    };
    const timer = setTimeout(() => finish(new Error("PING timed out")), timeoutMs);
    sock.setEncoding("utf8");
    sock.on("connect", () => sock.write("PING\r\n"));
    sock.on("data", (chunk: string) => {
      buf += chunk;
      const eol = buf.indexOf("\r\n");
      if (eol >= 0) finish(null, buf.slice(0, eol));
    });
    sock.on("error", (err) => finish(err));
    sock.on("close", () => finish(new Error("connection closed before reply")));
  });
}

function redisCli(args: string[], timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("redis-cli", args, { timeout: timeoutMs, encoding: "utf8" }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli ${args.join(" ")} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

// ---------------------------------------------------------------------------------------------------
// Single server

class ServerProcess implements RedisServer {
  readonly host = HOST;
  readonly url: string;
  private child: ChildProcess | null = null;
  private stopped = false;

  constructor(
    readonly port: number,
    readonly dir: string,
    private readonly extraArgs: readonly string[],
    private readonly appendonly: boolean,
  ) {
    this.url = `redis://${HOST}:${port}`;
  }

  private args(): string[] {
    const args = [
      "--port",
      String(this.port),
      "--bind",
      HOST,
      "--save",
      "",
      "--appendonly",
      this.appendonly ? "yes" : "no",
      "--dir",
      this.dir,
      "--daemonize",
      "no",
      "--protected-mode",
      "no",
      "--loglevel",
      "warning",
    ];
    if (this.appendonly) args.push("--appendfsync", "always");
    return [...args, ...this.extraArgs];
  }

  async start(): Promise<void> {
    if (this.stopped) throw new Error(`redis on port ${this.port} was stopped (its dir is gone); start a new one`);
    if (this.child && isRunning(this.child)) return;

    installExitHandler();
    const logFd = fs.openSync(path.join(this.dir, LOG_FILE), "a");
    let child: ChildProcess;
    try {
      child = spawn("redis-server", this.args(), { cwd: this.dir, stdio: ["ignore", logFd, logFd] });
    } finally {
      fs.closeSync(logFd);
    }
    let spawnError: Error | null = null;
    child.on("error", (err) => {
      spawnError = err;
    });
    child.once("exit", () => liveChildren.delete(child));
    liveChildren.add(child);
    child.unref();
    this.child = child;

    const deadline = Date.now() + READY_TIMEOUT_MS;
    let last = "";
    for (;;) {
      if (spawnError !== null || !isRunning(child)) {
        await waitExit(child, 1_000);
        const why =
          spawnError !== null
            ? `spawn failed: ${errorMessage(spawnError)}`
            : `exited with ${child.exitCode ?? child.signalCode}`;
        throw new Error(
          `redis-server on port ${this.port} ${why}\n--- ${this.dir}/${LOG_FILE} ---\n${logTail(this.dir)}`,
        );
      }
      try {
        last = await tcpPing(this.port);
        if (last === "+PONG" && isRunning(child)) return;
      } catch (err) {
        last = errorMessage(err);
      }
      if (Date.now() > deadline) {
        await this.kill();
        throw new Error(
          `redis-server on port ${this.port} not ready after ${READY_TIMEOUT_MS} ms (last: ${last})\n` +
            `--- ${this.dir}/${LOG_FILE} ---\n${logTail(this.dir)}`,
        );
      }
      await sleep(POLL_MS);
    }
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    if (isRunning(child)) child.kill("SIGKILL");
    if (!(await waitExit(child, 5_000))) throw new Error(`redis-server pid ${child.pid} did not die on SIGKILL`);
    this.child = null;
  }

  async restart(opts: { downMs?: number } = {}): Promise<void> {
    await this.kill();
    if (opts.downMs !== undefined && opts.downMs > 0) await sleep(opts.downMs);
    await this.start();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const child = this.child;
    if (child && isRunning(child)) {
      child.kill("SIGTERM");
      if (!(await waitExit(child, STOP_GRACE_MS))) await this.kill();
    }
    this.child = null;
    removeDir(this.dir);
  }
}

function makeTmpDir(prefix: string, parent = os.tmpdir()): string {
  const dir = fs.mkdtempSync(path.join(parent, prefix));
  liveDirs.add(dir);
  return dir;
}

function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  liveDirs.delete(dir);
}

function isPortClash(err: unknown): boolean {
  return /Address already in use/i.test(errorMessage(err));
}

/** Starts a server in `dir` on a free port; retries with another port if the port was taken in between. */
async function launch(dir: string, appendonly: boolean, extraArgs: readonly string[]): Promise<ServerProcess> {
  for (let attempt = 1; ; attempt++) {
    const server = new ServerProcess(await freePort(), dir, extraArgs, appendonly);
    try {
      await server.start();
      return server;
    } catch (err) {
      await server.kill().catch(() => undefined);
      if (attempt >= 3 || !isPortClash(err)) throw err;
      fs.rmSync(path.join(dir, LOG_FILE), { force: true });
    }
  }
}

export async function startRedis(opts: { appendonly?: boolean; extraArgs?: string[] } = {}): Promise<RedisServer> {
  const dir = makeTmpDir("redis-test-");
  try {
    return await launch(dir, opts.appendonly ?? false, opts.extraArgs ?? []);
  } catch (err) {
    removeDir(dir);
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------------
// Cluster

function clusterState(info: string): string {
  return /cluster_state:(\w+)/.exec(info)?.[1] ?? "?";
}

export async function startRedisCluster(opts: { masters?: number } = {}): Promise<RedisCluster> {
  const masters = opts.masters ?? 3;
  if (!Number.isInteger(masters) || masters < 3) {
    throw new Error(`startRedisCluster: redis-cli --cluster create needs at least 3 masters (got ${masters})`);
  }
  const dir = makeTmpDir("redis-cluster-");
  const servers: ServerProcess[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(servers.map((s) => s.stop()));
    removeDir(dir);
  };

  try {
    const clusterArgs = [
      "--cluster-enabled",
      "yes",
      "--cluster-config-file",
      "nodes.conf",
      "--cluster-node-timeout",
      "2000",
    ];
    const started = await Promise.allSettled(
      Array.from({ length: masters }, (_, i) => {
        const nodeDir = path.join(dir, `node${i}`);
        fs.mkdirSync(nodeDir);
        return launch(nodeDir, false, clusterArgs);
      }),
    );
    for (const r of started) if (r.status === "fulfilled") servers.push(r.value);
    const failed = started.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;

    const endpoints = servers.map((s) => `${HOST}:${s.port}`);
    await redisCli(["--cluster", "create", ...endpoints, "--cluster-replicas", "0", "--cluster-yes"], 30_000);

    const deadline = Date.now() + CLUSTER_TIMEOUT_MS;
    let states: string[] = [];
    for (;;) {
      states = await Promise.all(
        servers.map((s) =>
          redisCli(["-h", HOST, "-p", String(s.port), "cluster", "info"], 2_000).then(clusterState, () => "error"),
        ),
      );
      if (states.every((s) => s === "ok")) break;
      if (Date.now() > deadline) {
        throw new Error(
          `cluster not ok after ${CLUSTER_TIMEOUT_MS} ms: ` +
            servers.map((s, i) => `${s.port}=${states[i] ?? "?"}`).join(", "),
        );
      }
      await sleep(100);
    }
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }

  return { nodes: servers.map((s) => ({ host: HOST, port: s.port })), dir, stop };
}
