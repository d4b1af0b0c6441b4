import { expect } from "chai";
import { consumptionView } from "../backend/api/supply";
import { supplyKey } from "../backend/index/keys";
import { call, startApi, type ApiHarness } from "./helpers/api";

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
});
