/**
 * Property-based test of the stock counters: random custody and dispensing of units, cases and pallets on the
 * chain (ships, receipts in part, returns, decommissioning, dispensing whole and split packs and undoing both),
 * indexed in steps, then a reorg onto another random branch. After each step the counters must equal what the
 * index's per-unit records say of every unit and reconcile with the units commissioned, and the index must equal
 * a clean rebuild.
 *
 * The fixture gives both pharmacies some stock first and puts a pallet on its way to the distributor; receipts and
 * returns act on shipments with items still on their way. Operations are played as generated, the current holder acting where one is needed so that goods really move; the
 * contract refuses what does not apply (a revert is simply skipped): the chain is the truth the index follows.
 *
 * Reproduce or widen: STOCK_PROPS_SEED, STOCK_PROPS_RUNS.
 */
import { expect } from "chai";
import fc from "fast-check";
import { ethers, network } from "hardhat";
import { loadFixture } from "@nomicfoundation/hardhat-toolbox/network-helpers";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/signers";
import { Level } from "../backend/codes/refs";
import { IndexReader } from "../backend/index/query";
import { connectRedis, type RedisClient } from "../backend/store/redis";
import { startRedis } from "../scripts/lib/redis-server";
import { newIndexer, startRpcServer } from "./helpers/indexer";
import {
  caseRef,
  commissionRun,
  deployLedger,
  idOf,
  packRefs,
  palletRef,
  ship,
  shipAndReceive,
  unitRef,
} from "./helpers/ledger";
import { expectEqualToRebuild, expectStockAsUnitsSay, type Rpc } from "./helpers/stock";

/** 22 units, 4 a case, 3 cases a pallet: 6 cases (the last with 2 units), 2 pallets. Plus a run of loose units. */
const SHAPE = { unitCount: 22, unitsPerCase: 4, casesPerPallet: 3 } as const;
const LOOSE = { unitCount: 5, unitsPerCase: 0, casesPerPallet: 0 } as const;
const NUM_RUNS = Number(process.env.STOCK_PROPS_RUNS ?? 6);
const SEED = process.env.STOCK_PROPS_SEED ? Number(process.env.STOCK_PROPS_SEED) : undefined;

const KINDS = ["ship", "receive", "return", "decommission", "dispense", "undo", "split", "undoSplit"] as const;
interface Op {
  kind: (typeof KINDS)[number];
  items: number[];
  to: number;
  quantity: number;
}

async function stockFixture() {
  const f = await deployLedger();
  const { runId } = await commissionRun(f.ledger, f.maker, f.batchId, { ...SHAPE });
  const { runId: looseRunId } = await commissionRun(f.ledger, f.maker, f.batchId, { ...LOOSE });
  const actors = [f.maker, f.distributor, f.pharmacy, f.otherPharmacy];
  const byId = new Map<number, HardhatEthersSigner>();
  for (const a of actors) byId.set(Number(await idOf(f.ledger, a)), a);
  const cases = Math.ceil(SHAPE.unitCount / SHAPE.unitsPerCase);
  const refs = [
    ...Array.from({ length: SHAPE.unitCount }, (_, i) => unitRef(runId, i)),
    ...Array.from({ length: cases }, (_, i) => caseRef(runId, i)),
    ...Array.from({ length: Math.ceil(cases / SHAPE.casesPerPallet) }, (_, i) => palletRef(runId, i)),
    ...Array.from({ length: LOOSE.unitCount }, (_, i) => unitRef(looseRunId, i)),
  ];
  const units = refs.filter((r) => Number((r >> 32n) & 255n) === Level.Unit);
  // Pharmacies start with stock, so that dispensing has something to act on: pallet 0 at one, loose units at the
  // other; the rest stays with the maker.
  await shipAndReceive(f.ledger, f.maker, f.pharmacy, [palletRef(runId, 0)]);
  await shipAndReceive(f.ledger, f.maker, f.otherPharmacy, [unitRef(looseRunId, 0), unitRef(looseRunId, 1)]);
  // And a shipment on its way from the start (to the distributor), for receipts and returns to act on.
  const onItsWay = [palletRef(runId, 1)];
  const inTransit = { id: await ship(f.ledger, f.maker, f.distributor, onItsWay), items: onItsWay };
  return { ...f, actors, byId, refs, units, inTransit };
}
type Fixture = Awaited<ReturnType<typeof stockFixture>>;

const opArb: fc.Arbitrary<Op> = fc.record({
  kind: fc.constantFrom(...KINDS),
  items: fc.uniqueArray(fc.nat(40), { minLength: 1, maxLength: 3 }),
  to: fc.nat(3),
  quantity: fc.integer({ min: 1, max: 30 }),
});

/** Operations the chain accepted, per kind, over all runs: the test must really move goods. */
const applied = new Map<Op["kind"], number>();

/** Plays one operation; a revert (the operation does not apply now) is skipped. */
async function play(f: Fixture, op: Op, shipments: { id: bigint; items: bigint[] }[]): Promise<void> {
  const { ledger } = f;
  const pick = (list: bigint[]) => [...new Set(op.items.map((i) => list[i % list.length]!))];
  const holderOf = async (ref: bigint) => f.byId.get(Number((await ledger.custodyOf(ref)).holderId));
  try {
    if (op.kind === "ship" || op.kind === "decommission") {
      const items = pick(f.refs);
      const from = await holderOf(items[0]!);
      if (!from) return;
      if (op.kind === "decommission")
        return void (await (await ledger.connect(from).decommission(packRefs(items), 0)).wait());
      let to = f.actors[op.to]!;
      if (to === from) to = f.actors[(op.to + 1) % f.actors.length]!;
      const receipt = await (await ledger.connect(from).ship(to.address, packRefs(items))).wait();
      const event = receipt!.logs.map((l) => ledger.interface.parseLog(l)).find((e) => e?.name === "ShipmentCreated");
      shipments.push({ id: event!.args.shipmentId as bigint, items });
    } else if (op.kind === "receive" || op.kind === "return") {
      // Among shipments with items still on their way, so that receipts and returns really happen (the test's
      // check that goods moved counts them) rather than mostly naming shipments already settled.
      const open: { id: bigint; items: bigint[] }[] = [];
      for (const { id, items } of shipments) {
        const onTheirWay: bigint[] = [];
        for (const item of items) if ((await ledger.custodyOf(item)).inTransitShipment === id) onTheirWay.push(item);
        if (onTheirWay.length > 0) open.push({ id, items: onTheirWay });
      }
      const shipment = open[op.to % Math.max(1, open.length)];
      if (!shipment) return;
      const record = await ledger.shipmentOf(shipment.id);
      const party = f.byId.get(Number(op.kind === "receive" ? record.toId : record.fromId))!;
      const items = pick(shipment.items);
      const as = ledger.connect(party);
      const tx =
        op.kind === "receive"
          ? await as.receiveShipment(shipment.id, packRefs(items))
          : await as.returnToSender(shipment.id, packRefs(items));
      await tx.wait();
    } else {
      const units = pick(f.units);
      const pharmacy = await holderOf(units[0]!);
      if (!pharmacy) return;
      const as = ledger.connect(pharmacy);
      const unit = units[0]!;
      if (op.kind === "dispense") await (await as.dispense(packRefs(units), ethers.ZeroHash)).wait();
      else if (op.kind === "undo") await (await as.undoDispense(packRefs(units))).wait();
      else if (op.kind === "split")
        await (await as.dispensePartial(unit, op.quantity % 24 || 1, ethers.ZeroHash)).wait();
      else await (await as.undoDispensePartial(unit, op.quantity % 5 || 1)).wait();
    }
    applied.set(op.kind, (applied.get(op.kind) ?? 0) + 1);
  } catch (err) {
    if (!/reverted/.test((err as Error).message)) throw err;
  }
}

describe("Indexer: stock counters under random custody and dispensing (property)", function () {
  this.timeout(600_000);
  let rpc: Rpc;
  let server: Awaited<ReturnType<typeof startRedis>>;
  let redis: RedisClient;

  before(async function () {
    rpc = await startRpcServer();
    server = await startRedis();
    redis = connectRedis({ url: server.url });
  });

  after(async function () {
    redis.disconnect();
    await rpc.close();
    await server.stop();
  });

  it("counts every unit where the index's own records put it, through steps, a rebuild and a reorg", async function () {
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { minLength: 4, maxLength: 16 }),
        fc.array(opArb, { minLength: 2, maxLength: 12 }),
        fc.array(opArb, { minLength: 1, maxLength: 8 }),
        async (first, branchA, branchB) => {
          const f = await loadFixture(stockFixture);
          const t = await newIndexer(rpc.url, await f.ledger.getAddress(), redis, { reorgDepth: 1000 });
          try {
            await t.store.wipe();
            const reader = new IndexReader(redis, 16);
            const shipments: { id: bigint; items: bigint[] }[] = [f.inTransit];
            for (const op of first) await play(f, op, shipments);
            await t.indexer.syncOnce();
            await expectStockAsUnitsSay(reader);

            const fork = (await network.provider.send("evm_snapshot")) as string;
            const shipmentsA = [...shipments];
            for (const op of branchA) await play(f, op, shipmentsA);
            await t.indexer.syncOnce();
            await expectStockAsUnitsSay(reader);

            await network.provider.send("evm_revert", [fork]);
            for (const op of branchB) await play(f, op, shipments);
            // The new branch is longer than the old, so that the indexer sees the reorg.
            for (let i = 0; i <= branchA.length; i++) await network.provider.send("evm_mine");
            await t.indexer.syncOnce();
            await expectStockAsUnitsSay(reader);
            await expectEqualToRebuild(rpc, await f.ledger.getAddress(), redis);
          } finally {
            t.close();
          }
        },
      ),
      { numRuns: NUM_RUNS, seed: SEED, endOnFailure: true },
    );
    if (process.env.STOCK_PROPS_VERBOSE) console.log(Object.fromEntries(applied));
    for (const kind of ["ship", "receive", "dispense"] as const)
      expect(applied.get(kind) ?? 0, kind).to.be.greaterThan(0);
  });
});
