/**
 * The operators' commands (scripts/*.ts) as child processes: `node -r ts-node/register/transpile-only`, so that a
 * signal reaches the command itself, not npx.
 */
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";

const ROOT = path.resolve(__dirname, "..", "..");

export interface ScriptChild {
  proc: ChildProcess;
  /** Resolves when it exits: its exit code (null when killed by a signal) and output. */
  exited: Promise<ScriptResult>;
}

export interface ScriptResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function spawnScript(script: string, args: string[], env: Record<string, string>): ScriptChild {
  const proc = spawn(process.execPath, ["-r", "ts-node/register/transpile-only", `scripts/${script}`, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  proc.stdout!.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
  proc.stderr!.on("data", (c: Buffer) => (stderr = (stderr + c.toString("utf8")).slice(-20_000)));
  const exited = new Promise<ScriptResult>((resolve) =>
    proc.once("exit", (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { proc, exited };
}

export function runScript(script: string, args: string[], env: Record<string, string>): Promise<ScriptResult> {
  return spawnScript(script, args, env).exited;
}

/** The last line of a command's stdout that is a JSON object. */
export function lastJson<T = Record<string, unknown>>(stdout: string): T {
  const line = stdout
    .trim()
    .split("\n")
    .reverse()
    .find((l) => l.startsWith("{"));
  if (!line) throw new Error(`no JSON line in: ${stdout}`);
  return JSON.parse(line) as T;
}
