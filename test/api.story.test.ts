/**
 * The whole story of a batch through the HTTP API alone: a manufacturer registers a product and a batch and
 * commissions 20,000 packs in cases and pallets; a distributor receives a pallet and ships cases to two pharmacies;
 * the pharmacies dispense whole and split packs and undo one; an insurer checks and settles a claim; a second
 * insurer's attempt on the same codes is refused; a recall stops dispensing. Then the index is compared with the
 * chain for every code (index:verify --all) and must show no difference.
 */
import { expect } from "chai";
import { packingOrder } from "../backend/chain/commission-plan";
import { demoRunCodes } from "../backend/chain/runs";
import { verifyIndex } from "../backend/index/verify";
import { call } from "./helpers/api";
import { startWriteApi, type WriteHarness } from "./helpers/writes";

type Body = Record<string, unknown> & {
  status?: string | number;
  error?: { name: string };
  items?: { code: string; status: string }[];
  shipmentId?: number;
};

const PRODUCT = "8619876";
const SHAPE = { unitCount: 20_000, unitsPerCase: 100, casesPerPallet: 10 };
const scanned = (normalised: string) => normalised.replace(/^(CN|X):/, "");

describe("API: the story of a batch, through the HTTP API alone", function () {
  this.timeout(300_000);
  let h: WriteHarness;
  const post = (path: string, key: string, body: unknown) => call<Body>(h, path, { key, body });
  /** Contract order: 20,000 units, then 200 cases, then 20 pallets. */
  const codes = demoRunCodes(PRODUCT, SHAPE, 7_000_000).map(scanned);
  const unit = (i: number) => codes[i]!;
  const caseCode = (c: number) => codes[SHAPE.unitCount + c]!;
  const palletCode = (p: number) => codes[SHAPE.unitCount + 200 + p]!;

  before(async function () {
    h = await startWriteApi();
  });
  after(async function () {
    await h?.close();
  });

  let batchId: number;

  it("the manufacturer registers a product and a batch, and commissions 20,000 packs in cases and pallets", async function () {
    const product = await post("/v1/products", h.keys.maker, {
      productCode: PRODUCT,
      name: "Atorvastatin 20mg",
      approvalNumber: "H20250042",
      packageSpec: "tablet 14/box",
      packQuantity: 14,
    });
    expect(product.status, product.text).to.equal(201);
    const productId = (product.body.product as { id: number }).id;
    const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
    const batch = await post("/v1/batches", h.keys.maker, {
      productId,
      lot: "ATV-2026-001",
      manufacturedOn: day(-1),
      expiresOn: day(700),
    });
    expect(batch.status, batch.text).to.equal(201);
    batchId = (batch.body.batch as { id: number }).id;
    const csv = packingOrder(codes, SHAPE)
      .map((l) => `${l.code},${l.level}`)
      .join("\n");
    const job = await call<{ jobId: string; runs: { planned: number } }>(h, `/v1/batches/${batchId}/commissions`, {
      key: h.keys.maker,
      rawBody: csv,
      headers: { "content-type": "text/csv" },
    });
    expect(job.status, job.text).to.equal(202);
    for (let i = 0; ; i++) {
      const r = await call<{ status: string; codes: { indexed: number }; errors: unknown[] }>(
        h,
        `/v1/jobs/${job.body.jobId}`,
        { key: h.keys.maker },
      );
      // A 503 (with Retry-After) is the service saying Redis did not answer in time: here, while the indexer commits
      // the 20,220 codes of the run, a command behind that commit outlives the harness's 2 s command timeout on a
      // loaded machine. A client asks again; so does this one.
      if (r.status === 503) {
        expect(r.headers.get("retry-after"), r.text).to.not.equal(null);
      } else if (r.body.status !== "running") {
        expect(r.status, r.text).to.equal(200);
        expect(r.body.status, JSON.stringify(r.body.errors)).to.equal("done");
        expect(r.body.codes.indexed).to.equal(20_220);
        break;
      }
      expect(i).to.be.lessThan(1200);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });

  it("the distributor receives a pallet and ships its cases on to two pharmacies, who receive them", async function () {
    const toDistributor = await post("/v1/shipments", h.keys.maker, {
      to: h.s.distributor.address,
      codes: [palletCode(0)],
    });
    expect(toDistributor.status, toDistributor.text).to.equal(201);
    const received = await post(`/v1/shipments/${toDistributor.body.shipmentId}/receive`, h.keys.distributor, {});
    expect(received.status, received.text).to.equal(200);
    for (const [pharmacy, key, cases] of [
      [h.s.pharmacy.address, h.keys.pharmacy, [0, 1, 2]],
      [h.s.otherPharmacy.address, h.keys.otherPharmacy, [3, 4]],
    ] as const) {
      const shipped = await post("/v1/shipments", h.keys.distributor, { to: pharmacy, codes: cases.map(caseCode) });
      expect(shipped.status, shipped.text).to.equal(201);
      const got = await post(`/v1/shipments/${shipped.body.shipmentId}/receive`, key, {});
      expect(got.status, got.text).to.equal(200);
    }
    const scan = await call<{ holder: { name: string } }>(h, `/v1/codes/${unit(350)}`, { key: h.keys.otherPharmacy });
    expect(scan.body.holder.name).to.equal("OtherPharmacy");
  });

  it("pharmacies dispense whole and split packs, and one dispensing is undone", async function () {
    const whole = await post("/v1/dispense", h.keys.pharmacy, {
      codes: [unit(0), unit(1), unit(2)],
      prescriptionHash: "RX-1001",
    });
    expect(whole.status, whole.text).to.equal(200);
    expect(whole.body.items!.map((i) => i.status)).to.deep.equal(["dispensed", "dispensed", "dispensed"]);
    const split = await post("/v1/dispense/partial", h.keys.pharmacy, {
      code: unit(3),
      quantity: 7,
      prescriptionHash: "RX-1002",
    });
    expect(split.status, split.text).to.equal(200);
    const other = await post("/v1/dispense", h.keys.otherPharmacy, { codes: [unit(300), unit(301)] });
    expect(other.status, other.text).to.equal(200);
    const undo = await post("/v1/dispense/undo", h.keys.otherPharmacy, { codes: [unit(301)] });
    expect(undo.status, undo.text).to.equal(200);
    expect(undo.body.items![0]!.status).to.equal("active");
    const notTheirs = await post("/v1/dispense", h.keys.otherPharmacy, { codes: [unit(4)] });
    expect(notTheirs.status).to.be.within(400, 499);
  });

  it("an insurer checks and settles the claim; a second insurer's attempt on the same codes is refused", async function () {
    const lines = [{ code: unit(0) }, { code: unit(1) }, { code: unit(3), quantity: 7 }];
    const check = await post("/v1/claims/check", h.keys.insurer, {
      claimRef: "CLM-2026-1",
      pharmacy: h.s.pharmacy.address,
      lines,
    });
    expect(check.status, check.text).to.equal(200);
    expect(check.body.decision).to.equal("APPROVE");
    const submitted = await post("/v1/claims", h.keys.pharmacy, {
      insurer: h.s.insurer.address,
      claimRef: "CLM-2026-1",
      lines,
    });
    expect(submitted.status, submitted.text).to.equal(201);
    const settled = await post("/v1/claims/settle", h.keys.insurer, { claimRef: "CLM-2026-1" });
    expect(settled.status, settled.text).to.equal(200);
    // The pharmacy bills the same packs to a second insurer: the ledger lets only the first settlement through.
    const rivalClaim = await post("/v1/claims", h.keys.pharmacy, {
      insurer: h.s.otherInsurer.address,
      claimRef: "CLM-X-9",
      lines: [{ code: unit(0) }, { code: unit(2) }],
    });
    expect(rivalClaim.status, rivalClaim.text).to.equal(201);
    const rivalCheck = await post("/v1/claims/check", h.keys.otherInsurer, {
      claimRef: "CLM-X-9",
      pharmacy: h.s.pharmacy.address,
      lines: [{ code: unit(0) }, { code: unit(2) }],
    });
    expect(rivalCheck.body.decision).to.equal("REJECT");
    const rival = await post("/v1/claims/settle", h.keys.otherInsurer, { claimRef: "CLM-X-9" });
    expect(rival.status, rival.text).to.equal(409);
    expect(rival.body.title, rival.text).to.equal("UnitAlreadySettled");
    expect((rival.body.winner as { insurer: { name: string } }).insurer.name).to.equal("Insurer");
  });

  it("a recall stops dispensing", async function () {
    const recall = await post(`/v1/batches/${batchId}/recall`, h.keys.maker, { reason: "dissolution out of spec" });
    expect(recall.status, recall.text).to.equal(200);
    const refused = await post("/v1/dispense", h.keys.pharmacy, { codes: [unit(10)] });
    expect(refused.status, refused.text).to.be.within(400, 499);
    expect(refused.body.error!.name).to.match(/Recalled/);
    const scan = await call<{ alerts: string[] }>(h, `/v1/codes/${unit(10)}`, { key: h.keys.pharmacy });
    expect(scan.body.alerts).to.include("RECALLED");
  });

  it("index:verify --all finds no difference between the index and the chain", async function () {
    const report = await verifyIndex(h.ctx.reader, h.s.ledger, { runs: 0, itemsPerRun: 0, seed: 1 });
    expect(report.differences).to.deep.equal([]);
    expect(report.codesChecked).to.be.greaterThan(20_220);
  });
});
