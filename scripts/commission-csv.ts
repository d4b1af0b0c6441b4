/**
 * Commissions a batch from a CSV of codes: every line read with the API's parser and planned into runs by the
 * API's commissioning plan (backend/chain/commission-plan.ts) before anything is sent, then sent one run a
 * transaction, several in flight, with a resumable state file (scripts/lib/commission-state.ts, commission-send.ts): a commissioning
 * interrupted at any point (Ctrl-C, SIGKILL, a lost node) and started again submits nothing twice and finishes.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { SingleBar, Presets } from "cli-progress";
import { planCommission, type CommissionPlan } from "../backend/chain/commission-plan";
import { Signers } from "../backend/chain/signers";
import { loadConfig } from "../backend/config/env";
import { IndexReader } from "../backend/index/query";
import { connectIndexRedis, resolveDeployment } from "../backend/index/service";
import { LedgerChain } from "../backend/chain/client";
import { DrugLedger__factory } from "../typechain-types";
import { EXIT, InvalidInputError, positiveInt, required, runCommand, UsageError } from "./lib/cli";
import { checkResumable, loadState, newState, saveState } from "./lib/commission-state";
import { CommissionSender } from "./lib/commission-send";
import { checkParents, readCodesCsv, type CsvLineError } from "./lib/csv-upload";

/** Reasons that belong to one line alone: with --skip-bad the line is left out and the rest planned again. */
const LINE_LOCAL = new Set(["BAD_LINE", "BAD_LEVEL", "UNREADABLE_CODE", "WRONG_PRODUCT", "NOT_A_PACK_CODE"]);
LINE_LOCAL.add("PREFIX_NOT_ASSIGNED").add("DUPLICATE_IN_UPLOAD");

function printErrors(errors: readonly CsvLineError[], file: string): void {
  for (const e of errors)
    process.stderr.write(
      `${file}:${e.line}: ${e.reason}: ${e.detail}${e.hints?.length ? ` (${e.hints.join(", ")})` : ""}\n`,
    );
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
pallet each line is packed into. Every bad line is reported as <file>:<line>: <reason>: <detail>, and nothing is
sent while any is bad.

  --batch <id>      the batch (registered by the manufacturer)
  --file <path>     the CSV
  --state <path>    the resumable state (default <file>.state.json): start the same command again after an
                    interruption and it sends only what the ledger does not hold yet
  --skip-bad        leave bad lines out (reported all the same) and commission the rest
  --dry-run         validate and plan only
  --in-flight <n>   transactions sent and not yet mined at once (default COMMISSION_IN_FLIGHT or 4); each is
                    recorded in the state file before it is broadcast, so an interruption is resumed all the same
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
  },
  async run(values) {
    const batchId = positiveInt(values.batch, "batch");
    const file = required(values.file, "file");
    const stateFile = values.state ?? `${file}.state.json`;
    const inFlight = positiveInt(values["in-flight"] ?? process.env.COMMISSION_IN_FLIGHT ?? "4", "in-flight");
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
    }
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

      const { lines, errors: csvErrors, parents } = readCodesCsv(text);
      const parentErrors = parents ? checkParents(lines, parents) : [];
      let outcome = planCommission(lines, context, csvErrors as never);
      let bad: CsvLineError[] = [...(outcome.ok ? [] : outcome.errors), ...parentErrors].sort(
        (a, b) => a.line - b.line,
      );
      if (!outcome.ok && outcome.errors.length === 0) throw new InvalidInputError(outcome.detail);
      if (bad.length > 0) {
        printErrors(bad, file);
        if (!values["skip-bad"])
          throw new InvalidInputError(
            `${bad.length} bad lines in ${file}: nothing sent (--skip-bad to leave them out)`,
          );
        const skipped = new Set(bad.map((e) => e.line));
        const structural = bad.filter((e) => !LINE_LOCAL.has(e.reason) && e.reason !== "BAD_PARENT");
        if (structural.length > 0)
          throw new InvalidInputError(
            `${structural.length} lines break the packing (${structural[0]!.reason} at line ${structural[0]!.line}): --skip-bad leaves out bad codes, not a broken packing order`,
          );
        outcome = planCommission(
          lines.filter((l) => !skipped.has(l.line)),
          context,
        );
        if (!outcome.ok) {
          printErrors(outcome.errors, file);
          throw new InvalidInputError(`without the bad lines the packing is still not valid: ${outcome.detail}`);
        }
        process.stderr.write(`skipping ${skipped.size} bad lines\n`);
        bad = [];
      }
      const plan: CommissionPlan = (outcome as { ok: true; plan: CommissionPlan }).plan;
      const summary = { batchId, units: plan.units, cases: plan.cases, pallets: plan.pallets, runs: plan.runs.length };
      if (values["dry-run"]) {
        console.log(JSON.stringify({ msg: "plan (dry run, nothing sent)", ...summary }));
        return;
      }

      const signers = await Signers.load(config);
      const wallet = signers.get(maker.account);
      if (!wallet)
        throw new InvalidInputError(`this deployment holds no signing key for ${maker.account} (${maker.name})`);
      const fresh = newState(
        {
          csvSha256: createHash("sha256").update(text).digest("hex"),
          batchId,
          account: maker.account.toLowerCase(),
          ledger: chain.address,
          chainId: chain.chainId,
        },
        plan.runs,
      );
      const saved = loadState(stateFile);
      if (saved) checkResumable(saved, fresh);
      const state = saved ?? fresh;
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
        plan: plan.runs,
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
      const found = await sender.reconcile(state);
      const doneBefore = state.runs.filter((r) => r.state === "done").reduce((n, r) => n + r.codes, 0);
      if (!values["no-progress"]) bar.start(plan.codes, doneBefore, { rate: 0 });
      const finished = await sender.sendAll(state);
      bar.stop();
      const seconds = (Date.now() - started) / 1000;
      const result = {
        ...summary,
        resumed: saved !== null,
        runsFoundOnChain: found,
        codesSentNow: sentCodes,
        seconds: Number(seconds.toFixed(2)),
        codesPerSecond: sentCodes > 0 ? Math.round(sentCodes / seconds) : 0,
        inFlight,
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
