/**
 * Commissions a batch from a CSV of codes in two streamed passes (scripts/lib/csv-stream.ts), so that memory holds
 * one window of runs, not the file: pass 1 reads every line with the API's parser and packing checks and reports
 * each bad line before anything is sent; pass 2 plans one window of whole pallets at a time with the API's
 * commissioning plan (backend/chain/commission-plan.ts) while the sender keeps several runs in flight, one run a
 * transaction, with a resumable state file (scripts/lib/commission-state.ts, commission-send.ts): a commissioning
 * interrupted at any point (Ctrl-C, SIGKILL, a lost node) and started again submits nothing twice and finishes.
 */
import { existsSync } from "node:fs";
import { SingleBar, Presets } from "cli-progress";
import { Signers } from "../backend/chain/signers";
import { loadConfig } from "../backend/config/env";
import { IndexReader } from "../backend/index/query";
import { connectIndexRedis, resolveDeployment } from "../backend/index/service";
import { LedgerChain } from "../backend/chain/client";
import { DrugLedger__factory } from "../typechain-types";
import { EXIT, InvalidInputError, positiveInt, required, runCommand, UsageError } from "./lib/cli";
import { checkResumable, loadState, newState, saveState } from "./lib/commission-state";
import { CommissionSender } from "./lib/commission-send";
import { checkCsvFile, LINE_LOCAL, planCsvWindows, stampOf, type CheckedFile } from "./lib/csv-stream";
import type { CsvLineError } from "./lib/csv-upload";
import type { PlanContext } from "../backend/chain/commission-plan";

function printError(e: CsvLineError, file: string): void {
  process.stderr.write(
    `${file}:${e.line}: ${e.reason}: ${e.detail}${e.hints?.length ? ` (${e.hints.join(", ")})` : ""}\n`,
  );
}

/** A bar over the bytes of pass 1, shown on a terminal only (it would clutter a log). */
function checkBar(file: string, show: boolean): { onBytes?: (n: number) => void; stop(): void } {
  if (!show) return { stop: () => undefined };
  const bar = new SingleBar(
    { format: "checking      [{bar}] {percentage}% | {value}/{total} MB" },
    Presets.shades_classic,
  );
  bar.start(Math.ceil(stampOf(file).bytes / 1e6), 0);
  return { onBytes: (n) => bar.update(Math.floor(n / 1e6)), stop: () => bar.stop() };
}

/**
 * Pass 1, and with --skip-bad pass 1 again without the bad lines: the checked file, or an InvalidInputError with
 * every bad line printed.
 */
async function checkFile(
  file: string,
  context: PlanContext,
  skipBad: boolean,
  progress: boolean,
): Promise<{ checked: CheckedFile; skip?: Set<number> }> {
  const bar = checkBar(file, progress && process.stderr.isTTY);
  const first = await checkCsvFile(file, context, {
    onError: (e) => printError(e, file),
    onBytes: bar.onBytes,
  }).finally(() => bar.stop());
  if (first.badLines.size === 0) {
    if (first.unplannable) throw new InvalidInputError(first.unplannable);
    return { checked: first };
  }
  if (!skipBad)
    throw new InvalidInputError(
      `${first.badLines.size} bad lines in ${file}: nothing sent (--skip-bad to leave them out)`,
    );
  const structural = first.structural.filter((e) => !LINE_LOCAL.has(e.reason));
  if (structural.length > 0)
    throw new InvalidInputError(
      `${structural.length} lines break the packing (${structural[0]!.reason} at line ${structural[0]!.line}): --skip-bad leaves out bad codes, not a broken packing order`,
    );
  const skip = first.badLines;
  const again = await checkCsvFile(file, context, { skip, parents: false, onError: (e) => printError(e, file) });
  if (again.badLines.size > 0 || again.unplannable)
    throw new InvalidInputError(
      `without the bad lines the packing is still not valid: ${again.unplannable ?? `${again.badLines.size} lines`}`,
    );
  if (again.sha256 !== first.sha256) throw new InvalidInputError(`${file} changed while it was checked`);
  process.stderr.write(`skipping ${skip.size} bad lines\n`);
  return { checked: again, skip };
}

runCommand({
  usage:
    "npm run commission:csv -- --batch <id> --file <codes.csv> [--state <file>] [--in-flight <n>] [--skip-bad] [--dry-run]",
  help: `
Commissions the codes of a CSV into batch <id> on the ledger of DEPLOYMENT_FILE / LEDGER_ADDRESS at RPC_URL,
signed by the batch's manufacturer (its key in SIGNER_DEV_KEYS or SIGNER_KEYSTORE_DIR). The index (REDIS_URL)
supplies the batch's product and the maker's code prefixes.

The CSV: one code per line (loose units); or "code,level" lines (unit, case, pallet) in packing order (a case's
units, then the case; a pallet's cases, then the pallet); or, with the header "code,level,parent", the case or
pallet each line is packed into. The file is read twice, as a stream: first every line is checked and every bad
line reported as <file>:<line>: <reason>: <detail> (nothing is sent while any is bad), then it is planned and
sent one window of whole pallets (runs) at a time, so that memory holds a window, not the file.

  --batch <id>      the batch (registered by the manufacturer)
  --file <path>     the CSV
  --state <path>    the resumable state (default <file>.state.json): start the same command again after an
                    interruption and it sends only what the ledger does not hold yet
  --skip-bad        leave bad lines out (reported all the same) and commission the rest
  --dry-run         validate and plan only
  --in-flight <n>   transactions sent and not yet mined at once (default COMMISSION_IN_FLIGHT or 4); each is
                    recorded in the state file before it is broadcast, so an interruption is resumed all the same
  --window <n>      runs planned (parsed and hashed) at a time (default COMMISSION_WINDOW or 1: the sender
                    keeps its runs in flight meanwhile, and a larger window only holds more in memory)
  --no-progress     no progress bar

Exit codes: 0 done, 1 failure, 2 usage, 3 bad lines (nothing sent), 130 interrupted (state saved; run again).`,
  options: {
    batch: { type: "string" },
    file: { type: "string" },
    state: { type: "string" },
    "skip-bad": { type: "boolean" },
    "dry-run": { type: "boolean" },
    "no-progress": { type: "boolean" },
    "in-flight": { type: "string" },
    window: { type: "string" },
  },
  async run(values) {
    const batchId = positiveInt(values.batch, "batch");
    const file = required(values.file, "file");
    const stateFile = values.state ?? `${file}.state.json`;
    const inFlight = positiveInt(values["in-flight"] ?? process.env.COMMISSION_IN_FLIGHT ?? "4", "in-flight");
    const windowRuns = positiveInt(values.window ?? process.env.COMMISSION_WINDOW ?? "1", "window");
    if (!existsSync(file)) throw new UsageError(`cannot read ${file}: no such file`);
    const config = loadConfig();
    const deployment = await resolveDeployment(config);
    const redis = connectIndexRedis(config);
    const chain = await LedgerChain.connect(config.RPC_URL, deployment.ledger);
    try {
      const reader = new IndexReader(redis, config.CODE_BUCKET_BITS);
      const batch = await reader.batch(batchId);
      if (!batch) throw new InvalidInputError(`no batch ${batchId} in the index (is the indexer running?)`);
      const [product, maker] = await Promise.all([
        reader.product(batch.productId),
        reader.participant(batch.manufacturerId),
      ]);
      if (!product || !maker) throw new InvalidInputError(`batch ${batchId}: its product or maker is not indexed yet`);
      if (batch.recalled)
        throw new InvalidInputError(`batch ${batchId} is recalled: no codes are commissioned into it`);
      const ledger = DrugLedger__factory.connect(chain.address, chain.provider);
      const context = {
        productCode: product.productCode,
        prefixes: maker.codePrefixes ?? [],
        maxRunCodes: Number(await ledger.maxRunCodes()),
        domain: config.CODE_HASH_DOMAIN,
      };

      const { checked, skip } = await checkFile(file, context, values["skip-bad"] === true, !values["no-progress"]);
      const layout = checked.layout!;
      const summary = {
        batchId,
        units: checked.units,
        cases: checked.cases,
        pallets: checked.pallets,
        runs: checked.runs,
      };
      if (values["dry-run"]) {
        console.log(JSON.stringify({ msg: "plan (dry run, nothing sent)", ...summary }));
        return;
      }

      const signers = await Signers.load(config);
      const wallet = signers.get(maker.account);
      if (!wallet)
        throw new InvalidInputError(`this deployment holds no signing key for ${maker.account} (${maker.name})`);
      const identity = {
        csvSha256: checked.sha256,
        csvBytes: checked.stamp.bytes,
        batchId,
        account: maker.account.toLowerCase(),
        ledger: chain.address,
        chainId: chain.chainId,
        totalRuns: checked.runs,
        codes: checked.codes,
      };
      const saved = loadState(stateFile);
      if (saved) checkResumable(saved, identity);
      const state = saved ?? newState(identity);
      if (!saved) saveState(stateFile, state);

      let stop = false;
      const onSignal = () => {
        if (stop) process.exit(EXIT.interrupted); // a second Ctrl-C: the state file is consistent at any instant
        stop = true;
        process.stderr.write("\nstopping after the run in flight (Ctrl-C again to quit at once; the state is saved)\n");
      };
      process.on("SIGINT", onSignal).on("SIGTERM", onSignal);
      const bar = new SingleBar(
        {
          format: "commissioning [{bar}] {percentage}% | {value}/{total} codes | {rate} codes/s | eta {eta_formatted}",
        },
        Presets.shades_classic,
      );
      const started = Date.now();
      let sentCodes = 0;
      const sender = new CommissionSender({
        chain,
        wallet: wallet.connect(chain.provider),
        batchId,
        stateFile,
        fromBlock: deployment.deployedAtBlock,
        maxRangeBlocks: config.LOG_RANGE_MAX_BLOCKS,
        stopRequested: () => stop,
        inFlight,
        onRunDone: (run) => {
          sentCodes += run.codes;
          const seconds = (Date.now() - started) / 1000;
          bar.increment(run.codes, { rate: Math.round(sentCodes / Math.max(seconds, 0.001)) });
        },
      });
      await sender.reconcile(state);
      const doneBefore = state.runs.filter((r) => r.state === "done").reduce((n, r) => n + r.codes, 0);
      if (!values["no-progress"]) bar.start(identity.codes, doneBefore, { rate: 0 });
      const plan = planCsvWindows(file, context, {
        layout,
        windowRuns,
        skip,
        stamp: checked.stamp,
        isDone: (index) => state.runs[index]?.state === "done",
      });
      const finished = await sender.sendAll(state, plan).finally(() => bar.stop());
      const seconds = (Date.now() - started) / 1000;
      const result = {
        ...summary,
        resumed: saved !== null,
        runsFoundOnChain: sender.found,
        codesSentNow: sentCodes,
        codesSignedNow: sender.signedCodes,
        codesRebroadcastNow: sender.rebroadcastCodes,
        seconds: Number(seconds.toFixed(2)),
        codesPerSecond: sentCodes > 0 ? Math.round(sentCodes / seconds) : 0,
        inFlight,
        windowRuns,
        peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
        stateFile,
        runIds: state.runs.map((r) => r.runId ?? null),
      };
      if (!finished) {
        console.log(JSON.stringify({ msg: "interrupted: run the same command again to finish", ...result }));
        process.exitCode = EXIT.interrupted;
        return;
      }
      console.log(JSON.stringify({ msg: "batch commissioned", ...result }));
    } finally {
      chain.destroy();
      redis.disconnect();
    }
  },
});
