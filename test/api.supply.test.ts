import { expect } from "chai";
import { ethers } from "hardhat";
import { consumptionView } from "../backend/api/supply";
import { SUPPLY_FIELD, supplyKey, utcDay } from "../backend/index/keys";
import { call, startApi, type ApiHarness } from "./helpers/api";

type Stock = {
  day: string | null;
  commissioned: number;
  held: number;
  inTransit: number;
  dispensed: number;
  decommissioned: number;
  byHolder: { holderId: number; role: string; region: string; units: number }[];
  byRole: Record<string, number>;
  byRegion: { region: string; inTransit: number; units: number; byRole: Record<string, number> }[];
  recalled: { held: number; inTransit: number; byHolder: { holderId: number; units: number }[] };
  batches: { batchId: number; recalled: boolean; held: number; inTransit: number }[];
};

const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);

type Consumption = {
  productId: number;
  commissioned: number;
  dispensed: number;
  regions: { region: string; dispensed: number; perDay: { day: string; units: number }[] }[];
  pharmacies: { pharmacyId: number; dispensed: number }[];
};

/** What the rest of the index says of a product: units of its runs, and units dispensed per its batches. */
async function indexedFigures(h: ApiHarness, productId: number) {
  let commissioned = 0;
  let dispensed = 0;
  for (let runId = 1; ; runId++) {
    const run = await h.ctx.reader.run(runId);
    if (!run) break;
    if ((await h.ctx.reader.batch(run.batchId))?.productId === productId) commissioned += run.unitCount;
  }
  for (let batchId = 1; ; batchId++) {
    const batch = await h.ctx.reader.batch(batchId);
    if (!batch) break;
    if (batch.productId === productId) dispensed += (await h.ctx.reader.counters("b", batchId)).unitsDispensed ?? 0;
  }
  return { commissioned, dispensed };
}

describe("Supply figures (/v1/supply)", function () {
  this.timeout(120_000);
  let h: ApiHarness;

  before(async () => {
    h = await startApi();
  });
  after(async () => {
    await h?.close();
  });

  it("counts a product's units commissioned and dispensed as the rest of the index does", async () => {
    const reply = await call<Consumption>(h, "/v1/supply/products/1/consumption?days=366", { key: h.keys.regulator });
    expect(reply.status).to.equal(200);
    const expected = await indexedFigures(h, 1);
    expect(expected.dispensed).to.be.greaterThan(0);
    expect({ commissioned: reply.body.commissioned, dispensed: reply.body.dispensed }).to.deep.equal(expected);
    const perPharmacy = reply.body.pharmacies.reduce((sum, p) => sum + p.dispensed, 0);
    expect(perPharmacy).to.equal(expected.dispensed);
  });

  it("splits dispensing by the pharmacy's region and day, summing to the units dispensed", async () => {
    const raw = await h.redis.hgetall(supplyKey(1));
    const all = consumptionView(raw, { from: "0000-01-01", to: "9999-12-31" });
    expect(all.regions.length).to.be.greaterThan(0);
    for (const region of all.regions) expect(region.perDay.length).to.be.greaterThan(0);
    expect(all.regions.reduce((sum, r) => sum + r.dispensed, 0)).to.equal(all.dispensed);
    const pharmacy = await h.ctx.reader.participant(all.pharmacies[0]!.pharmacyId);
    expect(all.regions.map((r) => r.region)).to.include(pharmacy!.region);
  });

  it("lets a manufacturer see its own products only, and no other role", async () => {
    const path = "/v1/supply/products/1/consumption";
    expect((await call(h, path, { key: h.keys.maker })).status).to.equal(200);
    for (const holder of ["otherMaker", "pharmacy", "distributor", "insurer"] as const)
      expect((await call(h, path, { key: h.keys[holder] })).status, holder).to.equal(403);
    expect((await call(h, path)).status).to.equal(401);
    expect((await call(h, "/v1/supply/products/999/consumption", { key: h.keys.regulator })).status).to.equal(404);
    expect((await call(h, path + "?days=0", { key: h.keys.regulator })).status).to.equal(400);
  });

  it("serves the overview and a product's outlook to the regulator and the product's maker only", async () => {
    type Overview = { products: { productId: number; manufacturerId: number; regions: { region: string }[] }[] };
    const all = await call<Overview>(h, "/v1/supply/overview", { key: h.keys.regulator });
    expect(all.status, all.text).to.equal(200);
    const makers = new Set(all.body.products.map((p) => p.manufacturerId));
    expect(makers.size).to.be.greaterThan(1);
    const own = await call<Overview>(h, "/v1/supply/overview", { key: h.keys.maker });
    expect(own.status).to.equal(200);
    const makerId = all.body.products.find((p) => p.productId === 1)!.manufacturerId;
    expect(own.body.products.map((p) => p.productId)).to.deep.equal(
      all.body.products.filter((p) => p.manufacturerId === makerId).map((p) => p.productId),
    );
    for (const holder of ["pharmacy", "distributor", "insurer"] as const)
      expect((await call(h, "/v1/supply/overview", { key: h.keys[holder] })).status, holder).to.equal(403);
    const outlook = await call<{ perDay: unknown[]; regions: unknown[] }>(h, "/v1/supply/products/1/outlook?days=7", {
      key: h.keys.maker,
    });
    expect(outlook.status, outlook.text).to.equal(200);
    expect(outlook.body.perDay).to.have.length(7);
    expect((await call(h, "/v1/supply/products/1/outlook", { key: h.keys.otherMaker })).status).to.equal(403);
    expect((await call(h, "/v1/supply/products/999/outlook", { key: h.keys.regulator })).status).to.equal(404);
  });

  it("answers a product's stock by holder, role and region, in transit, dispensed, decommissioned and recalled", async () => {
    const reply = await call<Stock>(h, "/v1/supply/products/1/stock", { key: h.keys.regulator });
    expect(reply.status).to.equal(200);
    const stock = reply.body;
    expect(stock.day).to.equal(null);
    // Every unit commissioned is in one place.
    expect(stock.commissioned).to.equal(Number(await h.redis.hget(supplyKey(1), SUPPLY_FIELD.commissioned)));
    const accounted = [stock.held, stock.inTransit, stock.recalled.held, stock.recalled.inTransit];
    expect(sum(accounted) + stock.dispensed + stock.decommissioned).to.equal(stock.commissioned);
    expect(sum(stock.byHolder.map((b) => b.units))).to.equal(stock.held);
    expect(sum(Object.values(stock.byRole))).to.equal(stock.held);
    expect(sum(stock.byRegion.map((r) => r.units))).to.equal(stock.held);
    expect(stock.byRole.manufacturer && stock.byRole.distributor && stock.byRole.pharmacy).to.be.greaterThan(0);
    // The scenario: a pallet of 20 in transit, 2 loose units of a recalled batch at the maker, units dispensed.
    expect(stock.inTransit).to.equal(20);
    // In transit shows in the receiver's region.
    expect(sum(stock.byRegion.map((r) => r.inTransit))).to.equal(stock.inTransit);
    expect(stock.recalled).to.deep.include({ held: 2, inTransit: 0 });
    expect(stock.batches.filter((b) => b.recalled).map((b) => b.held)).to.deep.equal([2]);
    expect(stock.dispensed).to.be.greaterThan(0);
    expect(stock.decommissioned).to.be.greaterThan(0);
    const maker = await h.ctx.reader.participantByAccount(h.s.maker.address);
    expect(stock.byHolder.find((b) => b.holderId === maker!.id)).to.deep.include({
      role: "manufacturer",
      region: maker!.region,
    });
  });

  it("answers the stock as it closed on a past day", async () => {
    const now = await call<Stock>(h, "/v1/supply/products/1/stock", { key: h.keys.regulator });
    const today = utcDay((await ethers.provider.getBlock("latest"))!.timestamp);
    const closed = await call<Stock>(h, `/v1/supply/products/1/stock?day=${today}`, { key: h.keys.regulator });
    expect(closed.status).to.equal(200);
    expect({ ...closed.body, day: null }).to.deep.equal(now.body);
    // The day before the scenario began: nothing commissioned yet.
    const yesterday = utcDay((await ethers.provider.getBlock(1))!.timestamp - 86_400);
    const before = await call<Stock>(h, `/v1/supply/products/1/stock?day=${yesterday}`, { key: h.keys.regulator });
    expect(before.status, before.text).to.equal(200);
    expect([before.body.commissioned, before.body.batches.length]).to.deep.equal([0, 0]);
    // Long before that: older than the days the index keeps, a problem rather than empty stock.
    const beyond = await call<{ type: string; retentionDays: number }>(
      h,
      "/v1/supply/products/1/stock?day=2000-01-01",
      {
        key: h.keys.regulator,
      },
    );
    expect(beyond.status).to.equal(422);
    expect(beyond.body).to.include({ type: "urn:drugtrace:problem:beyond-retention", retentionDays: 400 });
    for (const bad of ["2025-02-30", "yesterday", "2025-1-01"])
      expect((await call(h, `/v1/supply/products/1/stock?day=${bad}`, { key: h.keys.regulator })).status, bad).to.equal(
        400,
      );
  });

  it("shows a product's stock to its manufacturer and the regulator only", async () => {
    const path = "/v1/supply/products/1/stock";
    expect((await call(h, path, { key: h.keys.maker })).status).to.equal(200);
    for (const holder of ["otherMaker", "pharmacy", "distributor", "insurer"] as const)
      expect((await call(h, path, { key: h.keys[holder] })).status, holder).to.equal(403);
    expect((await call(h, path)).status).to.equal(401);
    expect((await call(h, "/v1/supply/products/999/stock", { key: h.keys.regulator })).status).to.equal(404);
    const doc = await call<{ paths: Record<string, Record<string, unknown>>; components: { schemas: object } }>(
      h,
      "/openapi.json",
    );
    expect(doc.body.paths["/v1/supply/products/{productId}/stock"]).to.have.property("get");
    expect(doc.body.components.schemas).to.have.property("SupplyStock");
  });
});
