import { expect } from "chai";
import { ethers, network } from "hardhat";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import type { Alert } from "../backend/alerts";
import { flowKey, ringBucket, ringField } from "../backend/index/keys";
import { evaluateSupplyOnce } from "../backend/api/supply-alerts";
import { evaluateFlows } from "../backend/supply/flows";
import { call, startApi, type ApiHarness } from "./helpers/api";
import {
  commissionRun,
  DAY,
  idOf,
  packRefs,
  palletRef,
  Role,
  settleWithConsent,
  shipAndReceive,
  unitRef,
} from "./helpers/ledger";

/** A product's figures in an organisation's flow counters, summed over every day. */
async function flowTotals(h: ApiHarness, participantId: bigint | number) {
  const raw = await h.redis.hgetall(flowKey(Number(participantId)));
  const totals: Record<string, number> = {};
  for (const [field, value] of Object.entries(raw)) {
    const kindAndId = ringField(field).prefix;
    totals[kindAndId] = (totals[kindAndId] ?? 0) + ringBucket.decode(value)!.units;
  }
  return totals;
}

const latestTime = async (): Promise<number> => (await ethers.provider.getBlock("latest"))!.timestamp;

describe("Fraud signals from flows (backend/supply/flows.ts)", function () {
  this.timeout(180_000);
  let h: ApiHarness;
  let farPharmacy: HardhatEthersSigner;

  const evaluate = async () =>
    evaluateFlows(
      h.ctx.reader,
      h.ctx.alerts,
      { ...h.ctx.config, FLOW_CONCENTRATION_MIN_UNITS: 20 },
      await latestTime(),
    );
  const supplyAlerts = async (reason?: string) => {
    const query = `/v1/alerts?source=supply&limit=200${reason ? `&reason=${reason}` : ""}`;
    const reply = await call<{ alerts: Alert[] }>(h, query, { key: h.keys.regulator });
    expect(reply.status).to.equal(200);
    return reply.body.alerts;
  };

  // The rules need days to pass: the clock is moved forward, and put back (with the chain) after this file, so
  // that later tests see the wall clock's time again.
  let snapshot: string;

  before(async () => {
    snapshot = (await network.provider.send("evm_snapshot")) as string;
    h = await startApi();
    farPharmacy = (await ethers.getSigners())[15]!;
    await h.s.ledger.connect(h.s.regulator).onboard(farPharmacy.address, Role.Pharmacy, "Far", "LIC-Far", "440000");
    await h.reindex();
  });
  after(async () => {
    await h?.close();
    await network.provider.send("evm_revert", [snapshot]);
  });
  // Equal after a rebuild and undone on a reorg: test/indexer.events.test.ts dumps the whole index, fl:* included.

  it("counts per pharmacy what it received, dispensed and had settled, and per insurer whom it paid", async () => {
    const pharmacyId = await idOf(h.s.ledger, h.s.pharmacy);
    // The every-event scenario: a case (10 units) and a loose unit received; units 0, 1 and 15 dispensed (2 was
    // undone); unit 0 settled (1 was reversed); split packs are not counted.
    expect(await flowTotals(h, pharmacyId)).to.deep.equal({ "r:1": 11, "d:1": 3, "s:1": 1 });
    expect(await flowTotals(h, await idOf(h.s.ledger, h.s.insurer))).to.deep.equal({ [`s:${pharmacyId}`]: 1 });
    // The pallet the other pharmacy received had lost both its cases (one went ahead, one was opened): no units.
    expect(await flowTotals(h, await idOf(h.s.ledger, h.s.otherPharmacy))).to.deep.equal({});
  });

  it("raises a cross-region alert when a pack settled in one region is billed in another soon after", async () => {
    const reply = await call<{ decision: string }>(h, "/v1/claims/check", {
      key: h.keys.otherInsurer,
      body: {
        claimRef: "far-1",
        pharmacy: farPharmacy.address,
        lines: [{ code: h.s.codes.dispensedAndSettled }],
      },
    });
    expect(reply.body.decision).to.equal("REJECT");
    const [alert, ...more] = await supplyAlerts("FLOW_CROSS_REGION");
    expect(more).to.have.length(0);
    expect(alert!.class).to.equal("suspect_flow");
    expect(alert!.snapshot).to.include({ region: "440000", earlierRegion: "110000", codesInThisCheck: 1 });
    // The same again while it is open: no second alert.
    await call(h, "/v1/claims/check", {
      key: h.keys.otherInsurer,
      body: { claimRef: "far-2", pharmacy: farPharmacy.address, lines: [{ code: h.s.codes.dispensedAndSettled }] },
    });
    expect(await supplyAlerts("FLOW_CROSS_REGION")).to.have.length(1);
    // A pharmacy of the same region billing it is a claim alert only.
    await call(h, "/v1/claims/check", {
      key: h.keys.otherInsurer,
      body: {
        claimRef: "near-1",
        pharmacy: h.s.otherPharmacy.address,
        lines: [{ code: h.s.codes.dispensedAndSettled }],
      },
    });
    expect(await supplyAlerts("FLOW_CROSS_REGION")).to.have.length(1);
  });

  it("flags dispensing and settlements far above receipts and baseline, then settlements concentrated", async () => {
    const { ledger, maker, pharmacy, otherPharmacy, insurer } = h.s;
    // Day 0: the pharmacy receives a pallet (3 cases of 10); the other pharmacy a loose unit, dispensed and paid
    // by the same insurer, so that the insurer has more than one pharmacy to its book.
    const { runId } = await commissionRun(ledger, maker, 1n, { unitCount: 40, unitsPerCase: 10, casesPerPallet: 3 });
    await shipAndReceive(ledger, maker, pharmacy, [palletRef(runId, 0)]);
    await shipAndReceive(ledger, maker, otherPharmacy, [unitRef(runId, 30), unitRef(runId, 31)]);
    await ledger.connect(otherPharmacy).dispense(packRefs([unitRef(runId, 30), unitRef(runId, 31)]), ethers.ZeroHash);
    await settleWithConsent(ledger, insurer, otherPharmacy, ethers.id("other-1"), packRefs([unitRef(runId, 30)]));
    await h.reindex();
    expect((await flowTotals(h, await idOf(ledger, pharmacy)))["r:1"]).to.equal(11 + 30);
    expect((await evaluate()).raised).to.equal(0);

    // Eight days on (the receipt is out of the 7-day window), the pharmacy dispenses 19: below FLOW_MIN_UNITS.
    await network.provider.send("evm_increaseTime", [8 * DAY]);
    const units = Array.from({ length: 25 }, (_, i) => unitRef(runId, i));
    await ledger.connect(pharmacy).dispense(packRefs(units.slice(0, 19)), ethers.ZeroHash);
    await h.reindex();
    expect((await evaluate()).raised).to.equal(0);

    // Six more: 25 dispensed against none received in the window, 3 in the 28 days before.
    await ledger.connect(pharmacy).dispense(packRefs(units.slice(19)), ethers.ZeroHash);
    await h.reindex();
    const first = await evaluate();
    expect(first.signals.map((s) => s.reason).sort()).to.deep.equal([
      "FLOW_DISPENSED_ABOVE_BASELINE",
      "FLOW_DISPENSED_ABOVE_RECEIVED",
    ]);
    const [aboveReceived] = await supplyAlerts("FLOW_DISPENSED_ABOVE_RECEIVED");
    expect(aboveReceived!.snapshot).to.include({ dispensed: 25, received: 0, productId: 1, region: "110000" });
    expect(aboveReceived!.manufacturerId).to.equal(Number(await idOf(ledger, maker)));
    const [aboveBaseline] = await supplyAlerts("FLOW_DISPENSED_ABOVE_BASELINE");
    expect(aboveBaseline!.snapshot).to.include({ dispensed: 25, baselineUnits: 3, perDay: 3.57 });

    // Evaluated again while they are open: nothing new.
    expect((await evaluate()).raised).to.equal(0);

    // The insurer pays all 25: settlements above receipts and baseline, and 25 of its 25 packs in the window
    // went to one pharmacy (it paid two over window and baseline).
    await settleWithConsent(ledger, insurer, pharmacy, ethers.id("bulk-1"), packRefs(units));
    await h.reindex();
    const second = await evaluate();
    expect(second.raised).to.equal(3);
    const [concentration] = await supplyAlerts("FLOW_SETTLEMENT_CONCENTRATION");
    expect(concentration!.snapshot).to.deep.include({ settled: 25, pharmacies: 2, share: 1 });
    expect(concentration!.participants).to.deep.equal([Number(await idOf(ledger, insurer))]);
    expect(await supplyAlerts("FLOW_SETTLED_ABOVE_RECEIVED")).to.have.length(1);
    expect(await supplyAlerts("FLOW_SETTLED_ABOVE_BASELINE")).to.have.length(1);

    // Who sees them: the insurer its concentration alert, the pharmacy none of these, the maker its product's.
    const seen = async (key: string) =>
      (await call<{ alerts: Alert[] }>(h, "/v1/alerts?source=supply&limit=200", { key })).body.alerts.map(
        (a) => a.reason,
      );
    expect(await seen(h.keys.insurer)).to.deep.equal(["FLOW_SETTLEMENT_CONCENTRATION"]);
    expect(await seen(h.keys.pharmacy)).to.deep.equal([]);
    expect(await seen(h.keys.maker)).to.include("FLOW_DISPENSED_ABOVE_RECEIVED");

    // Once closed, the figures that still hold raise a new alert.
    const closed = await call(h, `/v1/alerts/${aboveReceived!.id}/transitions`, {
      key: h.keys.regulator,
      body: { to: "closed", reason: "false_positive" },
    });
    expect(closed.status).to.equal(200);
    // The API's periodic supply evaluation runs the flow rules too.
    const third = await evaluateSupplyOnce(h.ctx);
    expect(third.evaluated).to.equal(true);
    expect(await supplyAlerts("FLOW_DISPENSED_ABOVE_RECEIVED")).to.have.length(2);
  });
});
