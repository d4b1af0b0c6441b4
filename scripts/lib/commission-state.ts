/**
 * The resumable state of a CSV commissioning: one record per planned run, rewritten atomically (write a temporary
 * file, fsync, rename) at every step, so that a process killed at any instant leaves either the old or the new
 * state on disk, never half of one. A run is recorded as `sending`, with its nonce, fees and transaction hash,
 * BEFORE the transaction is broadcast: whatever was on the wire is known to the next start, which reconciles it
 * with the chain (see commission-send.ts) before anything is sent again.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import type { PlannedRun } from "../../backend/chain/commission-plan";

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
  version: 1;
  csvSha256: string;
  batchId: number;
  account: string;
  ledger: string;
  chainId: number;
  createdAt: string;
  runs: RunRecord[];
}

export class StateMismatchError extends Error {}

export function loadState(file: string): CommissionState | null {
  if (!existsSync(file)) return null;
  const state = JSON.parse(readFileSync(file, "utf8")) as CommissionState;
  if (state.version !== 1) throw new StateMismatchError(`${file}: unknown state version ${String(state.version)}`);
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

/** A new state for a plan, every run `planned`. */
export function newState(
  identity: Omit<CommissionState, "version" | "runs" | "createdAt">,
  runs: readonly PlannedRun[],
): CommissionState {
  return {
    version: 1,
    ...identity,
    createdAt: new Date().toISOString(),
    runs: runs.map((r) => ({
      index: r.index,
      root: r.payload.root,
      codes: r.lines.length,
      lines: { first: Math.min(...r.lines), last: Math.max(...r.lines) },
      state: "planned",
    })),
  };
}

/**
 * Checks that a state on disk belongs to this file, batch, account and ledger, and that its runs are the ones
 * planned now (same roots in the same order): resuming another plan would send codes twice.
 */
export function checkResumable(state: CommissionState, fresh: CommissionState): void {
  const fields = ["csvSha256", "batchId", "account", "ledger", "chainId"] as const;
  for (const f of fields)
    if (String(state[f]).toLowerCase() !== String(fresh[f]).toLowerCase())
      throw new StateMismatchError(
        `the state file was written for ${f} ${String(state[f])}, this is ${String(fresh[f])}: ` +
          "use another --state file, or remove it if that commissioning is finished",
      );
  const same = state.runs.length === fresh.runs.length && state.runs.every((r, i) => r.root === fresh.runs[i]!.root);
  if (!same)
    throw new StateMismatchError("the state file's runs differ from this plan (the ledger's run limit changed?)");
}
