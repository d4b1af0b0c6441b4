/**
 * The resumable state of a CSV commissioning: one record per planned run, rewritten atomically (write a temporary
 * file, fsync, rename) at every step, so that a process killed at any instant leaves either the old or the new
 * state on disk, never half of one. A run is recorded as `sending`, with its nonce, fees and transaction hash,
 * BEFORE the transaction is broadcast: whatever was on the wire is known to the next start, which reconciles it
 * with the chain (see commission-send.ts) before anything is sent again. The file is planned a window at a time
 * (scripts/lib/csv-stream.ts), so a run's record is added when its window is planned; the state names the file
 * by its SHA-256 and size, so that a file changed since the start is refused, not resumed.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import type { PlannedRun } from "../../backend/chain/commission-plan";
import { InvalidInputError } from "./cli";

export type RunProgress = "planned" | "sending" | "done";

export interface RunRecord {
  index: number;
  /** Merkle root of the run's code hashes: what the ledger's UnitsCommissioned event carries, to find it again. */
  root: string;
  codes: number;
  lines: { first: number; last: number };
  state: RunProgress;
  /** Set with `sending`: the signed transaction is fully determined by these and the run's content. */
  nonce?: number;
  gasLimit?: string;
  maxFeePerGas?: string;
  maxPriorityFeePerGas?: string;
  txHash?: string;
  /** Set with `done`. */
  runId?: number;
  block?: number;
}

export interface CommissionState {
  version: 2;
  csvSha256: string;
  csvBytes: number;
  batchId: number;
  account: string;
  ledger: string;
  chainId: number;
  createdAt: string;
  /** Runs the whole file makes (records are added as their window is planned) and the codes in them. */
  totalRuns: number;
  codes: number;
  runs: RunRecord[];
}

export type StateIdentity = Omit<CommissionState, "version" | "runs" | "createdAt">;

/** A state file that is not this commissioning's: refused input (exit 3), nothing sent. */
export class StateMismatchError extends InvalidInputError {}

export function loadState(file: string): CommissionState | null {
  if (!existsSync(file)) return null;
  const state = JSON.parse(readFileSync(file, "utf8")) as CommissionState;
  if (state.version !== 2)
    throw new StateMismatchError(
      `${file}: state version ${String(state.version)} is not this command's (2): finish it with the version that wrote it, or remove it`,
    );
  return state;
}

/** Writes the state so that a crash leaves the previous or the new version whole. */
export function saveState(file: string, state: CommissionState): void {
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, "w");
  try {
    writeSync(fd, JSON.stringify(state) + "\n");
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** A new state for a checked file, no run recorded yet. */
export function newState(identity: StateIdentity): CommissionState {
  return { version: 2, ...identity, createdAt: new Date().toISOString(), runs: [] };
}

/** The record of a run when its window is planned. */
export function recordOf(run: PlannedRun): RunRecord {
  let first = Infinity;
  let last = 0;
  for (const line of run.lines) {
    first = Math.min(first, line);
    last = Math.max(last, line);
  }
  return {
    index: run.index,
    root: run.payload.root,
    codes: run.lines.length,
    lines: { first, last },
    state: "planned",
  };
}

/**
 * Checks that a state on disk belongs to this file (same SHA-256 and size: a file changed since the start would
 * plan other runs, and resuming it could send codes twice), batch, account and ledger, and to the same cut into
 * runs (the ledger's run limit unchanged). Each run's root is checked again as its window is planned.
 */
export function checkResumable(state: CommissionState, identity: StateIdentity): void {
  const fields = ["csvSha256", "csvBytes", "batchId", "account", "ledger", "chainId", "totalRuns", "codes"] as const;
  for (const f of fields)
    if (String(state[f]).toLowerCase() !== String(identity[f]).toLowerCase())
      throw new StateMismatchError(
        `the state file was written for ${f} ${String(state[f])}, this is ${String(identity[f])}` +
          (f === "csvSha256" || f === "csvBytes" ? " (the file changed since the commissioning started)" : "") +
          ": use another --state file, or remove it if that commissioning is finished",
      );
}
