/**
 * Issue 12's simulation: one product dispensed at a steady rate by pharmacies in two regions, with block times
 * a day apart, then a surge in one region. Driven through the real ledger, indexer and API: the shortage warning
 * must fire at the first evaluation whose days of cover are below the threshold and not before, name the other
 * region as the first source, and the figures must be the same after the index is rebuilt from the chain.
 */
import { expect } from "chai";
import { ethers } from "hardhat";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import { evaluateSupplyOnce } from "../backend/api/supply-alerts";
import type { RunningApi } from "../backend/api/service";
import type { ApiContext } from "../backend/api/context";
import type { RedisClient } from "../backend/store/redis";
import { call, type OwnLedgerApi, serveOwnLedger } from "./helpers/api";
import { newIndexer, type TestIndexer } from "./helpers/indexer";
import {
  commissionRun,
  DAY,
  deployLedger,
  packRefs,
  palletRef,
  Role,
  shipAndReceive,
  unitRef,
  type LedgerFixture,
} from "./helpers/ledger";

const STEADY_PER_DAY = 4;
const SURGE_PER_DAY = 24;
const STEADY_DAYS = 10;
const SURGE_DAYS = 3;
const SURGED = "310000";
const STEADY = "440100";

interface Region {
  region: string;
  stock: { distributor: number; pharmacy: number; manufacturer: number };
  ratePerDay: number;
  daysOfCover: number | null;
  risk: string;
  surge: boolean;
}
interface Overview {
  generatedAt: string;
  thresholdDays: number;
  products: { productId: number; regions: Region[] }[];
}
interface AlertList {
  alerts: {
    id: string;
    status: string;
    count: number;
    reason: string;
    source: string;
    class: string;
    snapshot: Record<string, unknown>;
    code: { raw: string };
  }[];
}

describe("Supply simulation: steady dispensing in two regions, then a surge in one", function () {
  this.timeout(300_000);
  let served: OwnLedgerApi;
  let rpc: OwnLedgerApi["rpc"];
  let redis: RedisClient;
  let f: LedgerFixture;
  let indexer: TestIndexer;
  let ctx: ApiContext;
  let api: RunningApi;
  let regulatorKey: string;
  let pharmacies: Record<string, HardhatEthersSigner>;
  /** The next unit index each pharmacy dispenses (its pallets' units, in order). */
  const nextUnit: Record<string, number> = { [SURGED]: 0, [STEADY]: 200 };
  let runId: number;
  let day0: number;

  const overview = async () => {
    const reply = await call<Overview>({ url: api.url }, "/v1/supply/overview", { key: regulatorKey });
    expect(reply.status, reply.text).to.equal(200);
    return reply.body;
  };
  const regionOf = (o: Overview, region: string) => o.products[0]!.regions.find((r) => r.region === region)!;
  const shortageAlerts = async () =>
    (await call<AlertList>({ url: api.url }, "/v1/alerts?reason=SHORTAGE_RISK", { key: regulatorKey })).body.alerts;

  /** A block at `time` (the next transaction's, or an empty one), then the index catches up. */
  const at = async (time: number, tx?: () => Promise<unknown>) => {
    await ethers.provider.send("evm_setNextBlockTimestamp", [time]);
    if (tx) await tx();
    else await ethers.provider.send("evm_mine", []);
  };

  const dispense = async (region: string, units: number, time: number) => {
    const first = nextUnit[region]!;
    nextUnit[region] = first + units;
    const refs = Array.from({ length: units }, (_, i) => unitRef(runId, first + i));
    await at(time, async () =>
      (await f.ledger.connect(pharmacies[region]!).dispense(packRefs(refs), ethers.id(`rx-${region}-${time}`))).wait(),
    );
  };

  before(async () => {
    f = await deployLedger();
    const signers = await ethers.getSigners();
    pharmacies = { [SURGED]: signers[10]!, [STEADY]: signers[11]! };
    for (const [region, who] of Object.entries(pharmacies))
      await f.ledger
        .connect(f.regulator)
        .onboard(who.address, Role.Pharmacy, `Pharmacy ${region}`, `LIC-${region}`, region);
    // 440 units in cases of 10 and pallets of 2 cases: 20 pallets to the distributor, 10 on to each pharmacy;
    // the maker keeps 2 pallets (40 units).
    ({ runId } = await commissionRun(f.ledger, f.maker, f.batchId, {
      unitCount: 440,
      unitsPerCase: 10,
      casesPerPallet: 2,
    }));
    const pallets = (from: number, to: number) =>
      Array.from({ length: to - from }, (_, i) => palletRef(runId, from + i));
    await shipAndReceive(f.ledger, f.maker, f.distributor, pallets(0, 20));
    await shipAndReceive(f.ledger, f.distributor, pharmacies[SURGED]!, pallets(0, 10));
    await shipAndReceive(f.ledger, f.distributor, pharmacies[STEADY]!, pallets(10, 20));

    served = await serveOwnLedger(await f.ledger.getAddress(), f.regulator, { SUPPLY_MIN_DAYS_OF_COVER: "14" });
    ({ rpc, redis, indexer, ctx, api, regulatorKey } = served);
    await indexer.indexer.syncOnce();
    const latest = (await ethers.provider.getBlock("latest"))!.timestamp;
    day0 = (Math.floor(latest / DAY) + 1) * DAY;
  });

  after(async () => {
    await served?.close();
  });

  it("fires the shortage warning when cover crosses the threshold, not before, naming the other region", async () => {
    const threshold = 14;
    let firedOn: number | null = null;
    for (let day = 0; day < STEADY_DAYS + SURGE_DAYS; day++) {
      const surging = day >= STEADY_DAYS;
      await dispense(SURGED, surging ? SURGE_PER_DAY : STEADY_PER_DAY, day0 + day * DAY + 10 * 3600);
      await dispense(STEADY, STEADY_PER_DAY, day0 + day * DAY + 11 * 3600);
      // Evaluated at 01:00 the next day.
      await at(day0 + (day + 1) * DAY + 3600);
      await indexer.indexer.syncOnce();
      const evaluation = await evaluateSupplyOnce(ctx);
      expect(evaluation.evaluated).to.equal(true);
      // A second process in the same window does nothing.
      expect((await evaluateSupplyOnce(ctx)).evaluated).to.equal(false);
      const figures = regionOf(await overview(), SURGED);
      const alerts = await shortageAlerts();
      if (figures.daysOfCover === null || figures.daysOfCover >= threshold) {
        expect(alerts, `day ${day}: cover ${figures.daysOfCover}`).to.have.length(0);
        continue;
      }
      firedOn ??= day;
      expect(alerts, `day ${day}: cover ${figures.daysOfCover}`).to.have.length(1);
      const alert = alerts[0]!;
      expect(alert).to.include({ source: "supply", class: "supply_risk" });
      expect(alert.snapshot).to.include({ region: SURGED, productId: 1, thresholdDays: threshold });
      expect(alert.snapshot.daysOfCover).to.be.below(threshold);
      const sources = alert.snapshot.sources as { kind: string; region?: string; units?: number }[];
      expect(sources[0]).to.include({ kind: "region", region: STEADY });
      expect(sources.at(-1)).to.include({ kind: "manufacturer", units: 40 });
    }
    // Steady days and the first surge day keep cover above 14; the second surge day takes it below.
    expect(firedOn).to.equal(STEADY_DAYS + 1);
    const o = await overview();
    expect(regionOf(o, SURGED)).to.include({ surge: true });
    expect(regionOf(o, STEADY)).to.include({ risk: "ok", surge: false });
    expect(regionOf(o, SURGED).stock.pharmacy).to.equal(
      200 - STEADY_DAYS * STEADY_PER_DAY - SURGE_DAYS * SURGE_PER_DAY,
    );
    const surges = (await call<AlertList>({ url: api.url }, "/v1/alerts?reason=DEMAND_SURGE", { key: regulatorKey }))
      .body.alerts;
    expect(surges.map((a) => a.snapshot.region)).to.deep.equal([SURGED]);
  });

  it("gives the same figures after the index is rebuilt from the chain", async () => {
    const outlookPath = "/v1/supply/products/1/outlook?days=20";
    const before = { overview: await overview(), outlook: (await call(api, outlookPath, { key: regulatorKey })).body };
    await indexer.store.wipe();
    const rebuilt = await newIndexer(rpc.url, await f.ledger.getAddress(), redis);
    try {
      await rebuilt.indexer.syncOnce();
    } finally {
      rebuilt.close();
    }
    const after = { overview: await overview(), outlook: (await call(api, outlookPath, { key: regulatorKey })).body };
    expect(after).to.deep.equal(before);
    const perDay = (before.outlook as { perDay: { units: number }[] }).perDay;
    expect(perDay.reduce((sum, d) => sum + d.units, 0)).to.equal(
      STEADY_DAYS * STEADY_PER_DAY * 2 + SURGE_DAYS * (SURGE_PER_DAY + STEADY_PER_DAY),
    );
  });

  it("keeps one open alert per product, region and reason across evaluations; a new one only once it is closed", async () => {
    const [open] = await shortageAlerts();
    expect(open!.count).to.be.greaterThan(1);
    await at(day0 + (STEADY_DAYS + SURGE_DAYS + 1) * DAY + 3600);
    await indexer.indexer.syncOnce();
    await evaluateSupplyOnce(ctx);
    expect((await shortageAlerts()).map((a) => a.id)).to.deep.equal([open!.id]);
    const closed = await call({ url: api.url }, `/v1/alerts/${open!.id}/transitions`, {
      key: regulatorKey,
      body: { to: "closed", reason: "other", note: "stock moved from 440100" },
    });
    expect(closed.status, closed.text).to.equal(200);
    await at(day0 + (STEADY_DAYS + SURGE_DAYS + 2) * DAY + 3600);
    await indexer.indexer.syncOnce();
    expect((await evaluateSupplyOnce(ctx)).raised).to.be.greaterThan(0);
    const now = await shortageAlerts();
    expect(now.map((a) => a.status)).to.deep.equal(["new", "closed"]);
  });
});
