/**
 * Compares the index with the chain's own view functions: for sampled items their custody, dispensing and
 * settlement; for sampled runs every code of the commissioning event against the code lookup.
 */
import { Level, encodeRef, type ItemRef } from "../codes/refs";
import type { DrugLedger } from "../../typechain-types";
import { treePosition } from "../codes/run";
import { mulberry32 } from "../util/random";
import { itemCount } from "./model";
import type { IndexReader } from "./query";

export interface VerifyOptions {
  /** Items checked per run (all when 0 or larger than the run). */
  itemsPerRun: number;
  /** Runs checked (all when 0). */
  runs: number;
  /** Seed of the sample, so that a reported difference can be reproduced. */
  seed: number;
}

export interface VerifyReport {
  runsChecked: number;
  itemsChecked: number;
  codesChecked: number;
  differences: string[];
}

const MAX_REPORTED = 100;
const ITEMS_IN_FLIGHT = 32;

export async function verifyIndex(
  reader: IndexReader,
  ledger: DrugLedger,
  options: VerifyOptions,
): Promise<VerifyReport> {
  const report: VerifyReport = { runsChecked: 0, itemsChecked: 0, codesChecked: 0, differences: [] };
  const differ = (what: string) => {
    if (report.differences.length < MAX_REPORTED) report.differences.push(what);
  };
  const random = mulberry32(options.seed);
  const totalRuns = Number((await reader.totals()).runs ?? 0);
  const runIds = sample(
    Array.from({ length: totalRuns }, (_, i) => i + 1),
    options.runs,
    random,
  );
  // The chain may know runs the index has not reached yet; those are lag, not differences.
  for (const runId of runIds) {
    const run = await reader.run(runId);
    if (!run) {
      differ(`run ${runId}: counted in the index's totals but missing`);
      continue;
    }
    report.runsChecked++;
    const onChain = await ledger.runOf(runId);
    if (Number(onChain.batchId) !== run.batchId || Number(onChain.unitCount) !== run.unitCount) {
      differ(
        `run ${runId}: index says batch ${run.batchId}/${run.unitCount} units, chain ${onChain.batchId}/${onChain.unitCount}`,
      );
    }
    const [event] = await ledger.queryFilter(ledger.filters.UnitsCommissioned(runId), run.block, run.block);
    if (!event) {
      differ(`run ${runId}: no UnitsCommissioned event at block ${run.block}`);
      continue;
    }
    const codes = Buffer.from(event.args.codes.slice(2), "hex");
    const items: ItemRef[] = [];
    for (const level of [Level.Unit, Level.Case, Level.Pallet]) {
      for (let index = 0; index < itemCount(run, level); index++) items.push({ runId, level, index });
    }
    const checked = sample(items, options.itemsPerRun, random);
    // A few items in flight at a time: each is three view calls, a round trip apiece to a node over HTTP (minutes
    // for a 20,000-code run one at a time); differences are still reported in item order.
    for (let start = 0; start < checked.length; start += ITEMS_IN_FLIGHT) {
      const chunk = checked.slice(start, start + ITEMS_IN_FLIGHT);
      const found = await Promise.all(
        chunk.map(async (ref) => {
          const lines: string[] = [];
          const note = (what: string) => lines.push(what);
          const position = treePosition(run, ref.level, ref.index);
          const code = codes.subarray(position * 12, position * 12 + 12);
          const mapped = await reader.lookupCode(code);
          const same = (r: ItemRef) => r.runId === ref.runId && r.level === ref.level && r.index === ref.index;
          if (!mapped || !(same(mapped.ref) || mapped.conflicts.some(same))) {
            note(
              `code ${code.toString("hex")}: index maps it to ${JSON.stringify(mapped?.ref ?? null)}, chain to ${JSON.stringify(ref)}`,
            );
          }
          await compareItem(reader, ledger, ref, note);
          return lines;
        }),
      );
      for (const lines of found) lines.forEach(differ);
      report.codesChecked += chunk.length;
      report.itemsChecked += chunk.length;
    }
  }
  return report;
}

async function compareItem(reader: IndexReader, ledger: DrugLedger, ref: ItemRef, differ: (what: string) => void) {
  const view = await reader.item(ref);
  const name = `${Level[ref.level].toLowerCase()} ${ref.runId}/${ref.index}`;
  if (!view) return differ(`${name}: missing from the index`);
  const encoded = encodeRef(ref);
  const [holderId, inTransit, decommissioned] = await ledger.custodyOf(encoded);
  const c = view.custody;
  if (
    c.holderId !== Number(holderId) ||
    c.inTransitShipment !== Number(inTransit) ||
    c.decommissioned !== decommissioned
  ) {
    differ(
      `${name}: custody in index ${JSON.stringify(c)}, on chain holder ${holderId} transit ${inTransit} decommissioned ${decommissioned}`,
    );
  }
  if (ref.level !== Level.Unit) return;
  const [dispensed, settled, split, splitDispensed, splitSettled] = await ledger.dispensingOf(encoded);
  const d = view.dispensing;
  const s = view.settlement;
  const indexDispensed = d !== null && (!d.split || d.split.dispensed === d.split.packQuantity);
  const indexSettled = s !== null && (!s.split || s.split.settled === d?.split?.packQuantity);
  const ok =
    indexDispensed === dispensed &&
    indexSettled === settled &&
    (d?.split !== undefined) === split &&
    (d?.split?.dispensed ?? 0) === Number(splitDispensed) &&
    (s?.split?.settled ?? 0) === Number(splitSettled);
  if (!ok) {
    differ(
      `${name}: dispensing in index ${JSON.stringify({ d, s })}, on chain ${[dispensed, settled, split, splitDispensed, splitSettled].join("/")}`,
    );
  }
  const insurerOnChain = Number(await ledger.settlementOf(encoded));
  const insurerInIndex = s && !s.split ? s.insurerId : 0;
  if (insurerOnChain !== insurerInIndex)
    differ(`${name}: settled by insurer ${insurerInIndex} in index, ${insurerOnChain} on chain`);
}

function sample<T>(items: T[], n: number, random: () => number): T[] {
  if (n <= 0 || n >= items.length) return items;
  const copy = items.slice();
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(random() * (copy.length - i));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy.slice(0, n);
}
