/**
 * Exports a batch's or a code's trail from the index as GS1 EPCIS 2.0 JSON-LD or as CSV
 * (backend/export/): `npm run export:epcis -- --batch 3`, `npm run export:csv -- --code 86123450000000011234`.
 */
import { createWriteStream, readFileSync } from "node:fs";
import { once } from "node:events";
import { loadConfig } from "../backend/config/env";
import { IndexReader } from "../backend/index/query";
import { connectIndexRedis } from "../backend/index/service";
import { traceCsvLines } from "../backend/export/csv";
import { epcisDocument } from "../backend/export/epcis";
import { namingFromCodes, refOfCode, UnknownCodeError } from "../backend/export/naming";
import { batchTrace, itemTrace } from "../backend/export/trail";
import { epcOfCode, epcOfRef } from "../backend/export/identifiers";
import { encodeRef } from "../backend/codes/refs";
import { readCodesCsv } from "./lib/csv-upload";
import { InvalidInputError, positiveInt, runCommand, UsageError } from "./lib/cli";

runCommand({
  usage: "npm run export:epcis|export:csv -- (--batch <id> [--codes <codes.csv>] | --code <code>) [--out <file>]",
  help: `
Writes the trail of a batch (every run, case, pallet and unit) or of one code (with the moves of the case and
pallet it travelled in) as GS1 EPCIS 2.0 JSON-LD (--format epcis) or CSV (--format csv), read from the index at
REDIS_URL. The index holds code hashes only: items are named by their codes when given (--code, or --codes with
the CSV the batch was commissioned from; GS1 codes as GS1 Digital Link URIs, Chinese 20-digit codes as
urn:drugtrace:cn20:<code>), else by their ledger address urn:drugtrace:item:<run>.<level>.<index>.

  --format epcis|csv   (set by the npm scripts)
  --batch <id>         a batch
  --codes <file>       the batch's codes (any commission:csv layout), to name its items by code
  --code <code>        one code, as scanned
  --out <file>         write there (default: stdout)
  --tz <±HH:MM>        time zone offset of the event times (default +08:00)

Exit codes: 0 written, 1 failure, 2 usage, 3 unknown batch or code.`,
  options: {
    format: { type: "string" },
    batch: { type: "string" },
    codes: { type: "string" },
    code: { type: "string" },
    out: { type: "string" },
    tz: { type: "string", default: "+08:00" },
  },
  async run(values) {
    const format = values.format;
    if (format !== "epcis" && format !== "csv") throw new UsageError("--format must be epcis or csv");
    if (!values.batch === !values.code) throw new UsageError("give one of --batch <id> or --code <code>");
    if (!/^[+-]\d{2}:\d{2}$/.test(values.tz!)) throw new UsageError(`--tz ${values.tz} is not ±HH:MM`);
    const config = loadConfig();
    const redis = connectIndexRedis(config);
    try {
      const reader = new IndexReader(redis, config.CODE_BUCKET_BITS);
      const domain = config.CODE_HASH_DOMAIN;
      let trace;
      if (values.code) {
        const found = await refOfCode(reader, values.code, domain).catch((err: unknown) => {
          throw err instanceof UnknownCodeError ? new InvalidInputError(err.message) : err;
        });
        const own = epcOfCode(found.code);
        const asked = encodeRef(found.ref);
        trace = await itemTrace(reader, found.ref, (r) => (encodeRef(r) === asked ? own : epcOfRef(r)));
      } else {
        const batchId = positiveInt(values.batch, "batch");
        const codes = values.codes ? readCodesCsv(readFileSync(values.codes, "utf8")).lines.map((l) => l.code) : [];
        trace = await batchTrace(reader, batchId, await namingFromCodes(reader, codes, domain));
        if (!trace) throw new InvalidInputError(`no batch ${batchId} in the index`);
      }
      if (!trace) throw new InvalidInputError("the code's batch is not indexed");
      const out = values.out ? createWriteStream(values.out) : process.stdout;
      const write = async (chunk: string) => {
        if (!out.write(chunk)) await once(out, "drain");
      };
      if (format === "epcis")
        await write(JSON.stringify(epcisDocument(trace, { timeZoneOffset: values.tz! }), null, 2) + "\n");
      else for (const line of traceCsvLines(trace, values.tz!)) await write(line);
      if (values.out) {
        (out as ReturnType<typeof createWriteStream>).end();
        await once(out, "finish");
        process.stderr.write(`${trace.events.length} events written to ${values.out}\n`);
      }
    } finally {
      redis.disconnect();
    }
  },
});
