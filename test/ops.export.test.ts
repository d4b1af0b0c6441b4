/**
 * The trail exports (backend/export/, scripts/export.ts) of the every-event scenario, as indexed into a real
 * redis-server: the EPCIS 2.0 JSON-LD document validates against GS1's official JSON schema (draft-07, ajv) and
 * holds the events the ledger recorded; GS1 and Chinese codes are named as documented; the CSV has a row per
 * event and item; the command writes both, and refuses an unknown code with exit 3.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import Ajv from "ajv";
import addFormats from "ajv-formats";
import { expect } from "chai";
import { demoRunCodes } from "../backend/chain/runs";
import { Level } from "../backend/codes/refs";
import { tryParseCode } from "../backend/codes/parse";
import { traceCsvLines } from "../backend/export/csv";
import { epcisDocument, isoWithOffset } from "../backend/export/epcis";
import { epcOfCode } from "../backend/export/identifiers";
import { namingFromCodes } from "../backend/export/naming";
import { batchTrace, itemTrace } from "../backend/export/trail";
import { IndexReader } from "../backend/index/query";
import { startApi, type ApiHarness } from "./helpers/api";
import { runScript } from "./helpers/cli";

const FIXTURES = path.join(__dirname, "fixtures", "epcis");
const fixture = (name: string) => JSON.parse(readFileSync(path.join(FIXTURES, name), "utf8")) as unknown;

function epcisValidator() {
  const ajv = new Ajv({ allErrors: true, strict: false });
  addFormats(ajv);
  return ajv.compile(fixture("EPCIS-JSON-Schema.json") as object);
}

type EventJson = Record<string, unknown> & { type: string; bizStep?: string; epcList?: string[] };

describe("operators: trail exports (EPCIS 2.0 JSON-LD, CSV)", function () {
  this.timeout(180_000);
  let h: ApiHarness;
  let reader: IndexReader;
  const validate = epcisValidator();
  const shape = { unitCount: 40, unitsPerCase: 10, casesPerPallet: 2 };
  let codes: string[];

  before(async function () {
    h = await startApi();
    reader = new IndexReader(h.redis, 16);
    codes = demoRunCodes("8612345", shape, h.s.serialBase).map((c) => c.replace(/^(CN|X):/, ""));
  });
  after(async function () {
    await h?.close();
  });

  it("the validator applies the official schema: GS1's examples pass, a URN bizStep fails", function () {
    expect(validate(fixture("Example_9.6.1-ObjectEvent.jsonld")), JSON.stringify(validate.errors)).to.equal(true);
    expect(validate(fixture("Example_9.6.3-AggregationEvent.jsonld")), JSON.stringify(validate.errors)).to.equal(true);
    const wrong = fixture("Example_9.6.1-ObjectEvent.jsonld") as { epcisBody: { eventList: EventJson[] } };
    wrong.epcisBody.eventList[0]!.bizStep = "urn:epcglobal:cbv:bizstep:shipping";
    expect(validate(wrong)).to.equal(false);
  });

  it("a batch's trail is a valid EPCIS 2.0 document with every kind of event the ledger recorded", async function () {
    const trace = (await batchTrace(
      reader,
      Number(h.s.batchId),
      await namingFromCodes(reader, codes, "drugtrace:v1"),
    ))!;
    const doc = epcisDocument(trace, { timeZoneOffset: "+08:00" });
    expect(validate(doc), JSON.stringify(validate.errors?.slice(0, 3))).to.equal(true);
    const events = (doc.epcisBody as { eventList: EventJson[] }).eventList;
    const steps = new Set(events.map((e) => `${e.type}:${e.bizStep}`));
    for (const step of [
      "ObjectEvent:commissioning",
      "AggregationEvent:packing",
      "ObjectEvent:shipping",
      "ObjectEvent:receiving",
      "ObjectEvent:dispensing",
      "ObjectEvent:decommissioning",
    ])
      expect(steps, step).to.include(step);
    // 4 cases and 2 pallets of the first run packed; every unit of it commissioned, named by its code.
    const first = events.find(
      (e) => e.bizStep === "commissioning" && e.epcList!.includes(`urn:drugtrace:cn20:${codes[0]}`),
    )!;
    expect(first.epcList).to.have.length(40 + 4 + 2);
    expect(first.ilmd).to.have.property("cbvmda:lotNumber");
    expect(events.filter((e) => e.type === "AggregationEvent").length).to.be.at.least(6);
    const decommissioned = events.find((e) => e.bizStep === "decommissioning")!;
    expect(decommissioned).to.include({ action: "DELETE", disposition: "damaged" });
    expect(decommissioned.epcList).to.deep.equal([`urn:drugtrace:cn20:${codes[16]}`]);
    const dispensed = events.find((e) => e.bizStep === "dispensing")!;
    expect(dispensed.epcList).to.include(`urn:drugtrace:cn20:${codes[0]}`);
    expect(String(events[0]!.eventTime)).to.match(/\+08:00$/);
    expect(new Set(events.map((e) => e.eventID)).size).to.equal(events.length);
  });

  it("a unit's trail holds its case's and pallet's moves; the CSV lists them row by row", async function () {
    const unit = { runId: Number(h.s.runId), level: Level.Unit, index: 0 };
    const trace = (await itemTrace(reader, unit))!;
    const kinds = trace.events.map((e) => e.kind);
    expect(kinds[0]).to.equal("commissioned");
    expect(kinds).to.include.members(["aggregated", "shipped", "received", "dispensed"]);
    expect(validate(epcisDocument(trace, { timeZoneOffset: "+08:00" }))).to.equal(true);
    const csv = [...traceCsvLines(trace, "+08:00")];
    expect(csv[0]).to.equal("time,block,event,item,parent,shipment,from,to,by,reason,tx\r\n");
    expect(csv.length).to.equal(1 + trace.events.reduce((n, e) => n + e.epcs.length, 0));
    expect(csv[1]).to.match(/,commissioned,urn:drugtrace:item:\d+\.unit\.0,/);
  });

  it("names GS1 codes as Digital Link URIs and SSCCs by AI 00; times keep their offset", function () {
    const gs1 = tryParseCode("(01)06901234567892(21)ABC123");
    expect(gs1.ok).to.equal(true);
    expect(epcOfCode(gs1.ok ? gs1.code : undefined!)).to.equal("https://id.gs1.org/01/06901234567892/21/ABC123");
    const sscc = tryParseCode("(00)069012340000000018");
    if (sscc.ok) expect(epcOfCode(sscc.code)).to.equal("https://id.gs1.org/00/069012340000000018");
    expect(isoWithOffset(0, "+08:00")).to.equal("1970-01-01T08:00:00.000+08:00");
    expect(isoWithOffset(0, "-05:30")).to.equal("1969-12-31T18:30:00.000-05:30");
  });

  it("the command writes EPCIS and CSV for a code, and exits 3 for a code never commissioned", async function () {
    const env = { REDIS_URL: h.redisServer.url, CODE_BUCKET_BITS: "16", LOG_LEVEL: "warn" };
    const epcis = await runScript("export.ts", ["--format", "epcis", "--code", codes[0]!], env);
    expect(epcis.code, epcis.stderr).to.equal(0);
    const doc = JSON.parse(epcis.stdout) as Record<string, unknown>;
    expect(validate(doc), JSON.stringify(validate.errors?.slice(0, 3))).to.equal(true);
    const csv = await runScript("export.ts", ["--format", "csv", "--code", codes[0]!], env);
    expect(csv.code, csv.stderr).to.equal(0);
    expect(csv.stdout).to.include(`urn:drugtrace:cn20:${codes[0]}`);
    const unknown = await runScript("export.ts", ["--format", "csv", "--code", "86123459999999999999"], env);
    expect(unknown.code).to.equal(3);
    expect(unknown.stderr).to.include("not commissioned");
    const usage = await runScript("export.ts", ["--format", "xml", "--batch", "1"], env);
    expect(usage.code).to.equal(2);
  });
});
