/**
 * The daily rings (SUPPLY_DAILY_RETENTION_DAYS, backend/index/keys.ts `dailySlot`) end to end, with a retention of
 * 4 days: a pharmacy in another region than its distributor dispenses every day for six days, then a pallet is on
 * its way to it. Days older than the retention leave the index's buckets (dispensing, flows, past-day stock) and
 * every answer reaching back to them is a 422 naming the retention; an undo of a day no longer kept changes
 * nothing; in transit counts for the receiving region, now and not on a day before it was shipped; a reorg of a
 * block that took a slot over leaves the ring as it was; the index equals a rebuild.
 */
import { expect } from "chai";
import { ethers, network } from "hardhat";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import {
  dayOfNumber,
  flowKey,
  ringBucket,
  ringField,
  stockHistoryKey,
  supplyKey,
  utcDayNumber,
} from "../backend/index/keys";
import { dumpIndex } from "../backend/index/dump";
import { IndexReader } from "../backend/index/query";
import type { RedisClient } from "../backend/store/redis";
import { call, type OwnLedgerApi, serveOwnLedger } from "./helpers/api";
import type { TestIndexer } from "./helpers/indexer";
import {
  commissionRun,
  DAY,
  deployLedger,
  idOf,
  packRefs,
  palletRef,
  Role,
  shipAndReceive,
  unitRef,
  type LedgerFixture,
} from "./helpers/ledger";
import { expectEqualToRebuild, expectStockAsUnitsSay } from "./helpers/stock";

const RETENTION = 4;
const REGION = "440100";
const PER_DAY = 2;
const DAYS = 6;

interface RegionFigures {
  region: string;
  stock: { distributor: number; pharmacy: number; inTransit: number };
  ratePerDay: number;
  daysOfCover: number | null;
}
interface Overview {
  day: string | null;
  products: { productId: number; inTransit: number; regions: RegionFigures[] }[];
}
interface Problem {
  type: string;
  status: number;
  detail: string;
  retentionDays: number;
  oldestDayKept: string;
}

/** The days the dispensing ring of REGION holds, oldest first. */
const dispensedDays = (raw: Record<string, string>): number[] =>
  Object.entries(raw)
    .filter(([field]) => ringField(field).prefix === `d:${REGION}`)
    .map(([, value]) => ringBucket.decode(value)!.period)
    .sort((a, b) => a - b);

describe("Supply: daily buckets kept for SUPPLY_DAILY_RETENTION_DAYS, in transit by destination, past days", function () {
  this.timeout(300_000);
  let served: OwnLedgerApi;
  let redis: RedisClient;
  let f: LedgerFixture;
  let pharmacy: HardhatEthersSigner;
  let pharmacyId: number;
  let indexer: TestIndexer;
  let key: string;
  let runId: number;
  /** UTC day numbers of the six days dispensed on. */
  let days: number[];
  let snapshot: string;
  /** The stock answer right after the close of day 2 (the oldest day kept at the end). */
  let stockOfDay2: Record<string, unknown>;

  const get = <T>(path: string) => call<T>({ url: served.api.url }, path, { key });
  const at = async (time: number, tx: () => Promise<{ wait(): Promise<unknown> }>) => {
    await ethers.provider.send("evm_setNextBlockTimestamp", [time]);
    await (await tx()).wait();
  };
  const indexerOptions = { supplyDailyRetentionDays: RETENTION };

  before(async () => {
    snapshot = (await network.provider.send("evm_snapshot")) as string;
    f = await deployLedger();
    pharmacy = (await ethers.getSigners())[12]!;
    await f.ledger.connect(f.regulator).onboard(pharmacy.address, Role.Pharmacy, "Far", "LIC-Far", REGION);
    pharmacyId = Number(await idOf(f.ledger, pharmacy));
    // 200 units, 10 a case, 2 cases a pallet: 10 pallets to the distributor (region 110000), 2 on to the pharmacy.
    ({ runId } = await commissionRun(f.ledger, f.maker, f.batchId, {
      unitCount: 200,
      unitsPerCase: 10,
      casesPerPallet: 2,
    }));
    const pallets = Array.from({ length: 10 }, (_, i) => palletRef(runId, i));
    await shipAndReceive(f.ledger, f.maker, f.distributor, pallets);
    await shipAndReceive(f.ledger, f.distributor, pharmacy, pallets.slice(0, 2));
    const settings = {
      SUPPLY_DAILY_RETENTION_DAYS: String(RETENTION),
      SUPPLY_RATE_WINDOW_DAYS: "1",
      SUPPLY_BASELINE_DAYS: "1",
      FLOW_WINDOW_DAYS: "1",
      FLOW_BASELINE_DAYS: "1",
    };
    served = await serveOwnLedger(await f.ledger.getAddress(), f.regulator, settings, indexerOptions);
    ({ redis, indexer, regulatorKey: key } = served);

    const first = utcDayNumber((await ethers.provider.getBlock("latest"))!.timestamp) + 1;
    days = Array.from({ length: DAYS }, (_, i) => first + i);
    for (const [i, day] of days.entries()) {
      const units = Array.from({ length: PER_DAY }, (_, u) => unitRef(runId, i * PER_DAY + u));
      await at(day * DAY + 10 * 3600, () => f.ledger.connect(pharmacy).dispense(packRefs(units), ethers.id(`rx${i}`)));
      if (i === 2) {
        await indexer.indexer.syncOnce();
        stockOfDay2 = (await get<Record<string, unknown>>("/v1/supply/products/1/stock")).body;
      }
    }
    const today = days.at(-1)!;
    // Today: a unit dispensed on the first day comes back (beyond retention by now), and a pallet is on its way.
    await at(today * DAY + 12 * 3600, () => f.ledger.connect(pharmacy).undoDispense(packRefs([unitRef(runId, 0)])));
    await at(today * DAY + 13 * 3600, () =>
      f.ledger.connect(f.distributor).ship(pharmacy.address, packRefs([palletRef(runId, 2)])),
    );
    await indexer.indexer.syncOnce();
  });

  after(async () => {
    await served?.close();
    await network.provider.send("evm_revert", [snapshot]);
  });

  it("keeps the last days only, in a ring of slots per field: older days have left the buckets", async () => {
    const kept = days.slice(-RETENTION);
    const ring = (raw: Record<string, string>, prefix: string) =>
      Object.entries(raw)
        .filter(([field]) => ringField(field).prefix === prefix)
        .map(([, value]) => ringBucket.decode(value)!)
        .sort((a, b) => a.period - b.period);
    const dispensed = ring(await redis.hgetall(supplyKey(1)), `d:${REGION}`);
    // The undo of the first day's unit changed no day: that day had left the ring.
    expect(dispensed).to.deep.equal(kept.map((period) => ({ period, units: PER_DAY })));
    expect(Number(await redis.hget(supplyKey(1), "d"))).to.equal(DAYS * PER_DAY - 1);
    expect(ring(await redis.hgetall(flowKey(pharmacyId)), "d:1")).to.deep.equal(
      kept.map((period) => ({ period, units: PER_DAY })),
    );
    // One closing per day the batch changed, the last four kept.
    const history = Object.values(await redis.hgetall(stockHistoryKey(Number(f.batchId))));
    expect(history.length).to.be.at.most(RETENTION);
    await expectStockAsUnitsSay(new IndexReader(redis, 16));
  });

  it("answers consumption within the days kept, and a 422 naming the retention beyond them", async () => {
    const kept = days.slice(-RETENTION).map(dayOfNumber);
    const within = await get<{ regions: { region: string; perDay: { day: string }[] }[] }>(
      `/v1/supply/products/1/consumption?days=${RETENTION}`,
    );
    expect(within.status, within.text).to.equal(200);
    expect(within.body.regions.find((r) => r.region === REGION)!.perDay.map((d) => d.day)).to.deep.equal(kept);
    const beyond = await get<Problem>(`/v1/supply/products/1/consumption?days=${RETENTION + 1}`);
    expect(beyond.status).to.equal(422);
    expect(beyond.body).to.include({
      type: "urn:drugtrace:problem:beyond-retention",
      retentionDays: RETENTION,
      oldestDayKept: kept[0],
    });
    expect(beyond.body.detail).to.contain("SUPPLY_DAILY_RETENTION_DAYS");
  });

  it("answers the stock of a past day kept, and a 422 for a day before it or a 400 for a day to come", async () => {
    const day2 = dayOfNumber(days[2]!);
    const closed = await get<Record<string, unknown>>(`/v1/supply/products/1/stock?day=${day2}`);
    expect(closed.status, closed.text).to.equal(200);
    expect({ ...closed.body, day: null }).to.deep.equal(stockOfDay2);
    const beyond = await get<Problem>(`/v1/supply/products/1/stock?day=${dayOfNumber(days[1]!)}`);
    expect([beyond.status, beyond.body.oldestDayKept]).to.deep.equal([422, day2]);
    const tomorrow = dayOfNumber(days.at(-1)! + 1);
    expect((await get(`/v1/supply/products/1/stock?day=${tomorrow}`)).status).to.equal(400);
  });

  it("shows units on their way to a region in its stock and cover, now and not on the day before", async () => {
    const now = await get<Overview>("/v1/supply/overview");
    expect(now.status, now.text).to.equal(200);
    expect(now.body.day).to.equal(null);
    const region = now.body.products[0]!.regions.find((r) => r.region === REGION)!;
    // Two pallets received, 12 dispensed and one back; a pallet of 20 on its way.
    expect(region.stock).to.include({ pharmacy: 40 - DAYS * PER_DAY + 1, inTransit: 20 });
    // Cover counts them (the rate is rounded to two decimals in the answer, cover on the exact rate).
    expect(region.daysOfCover).to.be.closeTo((region.stock.pharmacy + 20) / region.ratePerDay, 0.1);
    const sender = now.body.products[0]!.regions.find((r) => r.region === "110000")!;
    expect(sender.stock.inTransit).to.equal(0);
    expect(now.body.products[0]!.inTransit).to.equal(20);

    // The close of yesterday: its rate reads back two days (window and baseline of one), all kept.
    const yesterday = dayOfNumber(days.at(-2)!);
    const then = await get<Overview>(`/v1/supply/overview?day=${yesterday}`);
    expect(then.status, then.text).to.equal(200);
    expect(then.body.day).to.equal(yesterday);
    const before = then.body.products[0]!.regions.find((r) => r.region === REGION)!;
    expect(before.stock).to.include({ pharmacy: 40 - (DAYS - 1) * PER_DAY, inTransit: 0 });
    expect(before.ratePerDay).to.equal(PER_DAY);

    const outlook = await get<{ day: string; perDay: { day: string; units: number }[] }>(
      `/v1/supply/products/1/outlook?days=3&day=${yesterday}`,
    );
    expect(outlook.status, outlook.text).to.equal(200);
    expect(outlook.body.day).to.equal(yesterday);
    expect(outlook.body.perDay.map((d) => d.units)).to.deep.equal([PER_DAY, PER_DAY, PER_DAY]);
    expect(outlook.body.perDay.at(-1)!.day).to.equal(yesterday);
  });

  it("refuses an outlook or overview whose rate or window reads beyond the days kept", async () => {
    const tooOld = dayOfNumber(days.at(-3)!);
    for (const path of [
      `/v1/supply/overview?day=${tooOld}`,
      `/v1/supply/products/1/outlook?day=${tooOld}`,
      `/v1/supply/products/1/outlook?days=${RETENTION + 1}`,
    ]) {
      const reply = await get<Problem>(path);
      expect(reply.status, path).to.equal(422);
      expect(reply.body.retentionDays, path).to.equal(RETENTION);
    }
    // The problem names the parameter to change: a day kept, but more days of history than kept, is `days`.
    const yesterday = dayOfNumber(days.at(-2)!);
    const tooManyDays = await get<Problem & { field: string }>(
      `/v1/supply/products/1/outlook?days=${RETENTION}&day=${yesterday}`,
    );
    expect([tooManyDays.status, tooManyDays.body.field]).to.deep.equal([422, "days"]);
    const dayTooOld = await get<Problem & { field: string }>(`/v1/supply/products/1/outlook?days=1&day=${tooOld}`);
    expect([dayTooOld.status, dayTooOld.body.field]).to.deep.equal([422, "day"]);
  });

  it("documents the 422 with the retention and the oldest day kept, as the answers carry them", async () => {
    type Doc = {
      paths: Record<string, { get: { responses: Record<string, { content: Record<string, { schema: object }> }> } }>;
      components: { schemas: Record<string, { allOf?: { $ref?: string; required?: string[] }[] }> };
    };
    const doc = (await get<Doc>("/openapi.json")).body;
    // The standard problem, and the members of its own.
    const [standard, own] = doc.components.schemas.BeyondRetentionProblem!.allOf!;
    expect(standard!.$ref).to.equal("#/components/schemas/Problem");
    expect(own!.required).to.include.members(["retentionDays", "oldestDayKept"]);
    for (const path of ["overview", "products/{productId}/outlook", "products/{productId}/stock"]) {
      const content = doc.paths[`/v1/supply/${path}`]!.get.responses["422"]!.content;
      expect(content["application/problem+json"]!.schema, path).to.deep.equal({
        $ref: "#/components/schemas/BeyondRetentionProblem",
      });
    }
  });

  it("says a day asked for that is today is now, on the stock as on the overview", async () => {
    const today = dayOfNumber(days.at(-1)!);
    const stock = await get<{ day: string | null }>(`/v1/supply/products/1/stock?day=${today}`);
    const overview = await get<{ day: string | null }>(`/v1/supply/overview?day=${today}`);
    expect([stock.status, stock.body.day, overview.body.day]).to.deep.equal([200, null, null]);
  });

  it("follows a reorg of a block that took a slot over: the abandoned day is undone, the ring as it was", async () => {
    const before = (await dumpIndex(redis)).lines;
    const branch = (await network.provider.send("evm_snapshot")) as string;
    // Tomorrow on the abandoned branch: a sale takes over the slot of the oldest day kept.
    const tomorrow = days.at(-1)! + 1;
    const unit = unitRef(runId, DAYS * PER_DAY);
    await at(tomorrow * DAY + 10 * 3600, () =>
      f.ledger.connect(pharmacy).dispense(packRefs([unit]), ethers.id("rx-b")),
    );
    await indexer.indexer.syncOnce();
    const slots = async () => dispensedDays(await redis.hgetall(supplyKey(1)));
    expect(await slots()).to.deep.equal([...days.slice(-RETENTION + 1), tomorrow]);

    await network.provider.send("evm_revert", [branch]);
    await network.provider.send("evm_mine");
    await network.provider.send("evm_mine");
    const status = (await indexer.indexer.syncOnce()) as { reorgsHandled: number };
    expect(status.reorgsHandled).to.be.greaterThan(0);
    expect(await slots()).to.deep.equal(days.slice(-RETENTION));
    expect((await dumpIndex(redis)).lines).to.deep.equal(before);
  });

  it("equals a clean rebuild with the same retention", async () => {
    await expectEqualToRebuild(served.rpc, await f.ledger.getAddress(), redis, indexerOptions);
  });
});
