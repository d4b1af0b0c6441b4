/**
 * The demo story `npm start` loads, written through the HTTP API with each organisation's demo key — the same
 * routes, checks and write pipeline a real organisation goes through (onboarding and code prefixes by the
 * regulator, products, batches and CSV commissioning by the manufacturers, shipments and receipts, dispensing,
 * claims and settlement). Nothing here calls the contract directly.
 */
import { packingOrder } from "../../backend/chain/commission-plan";
import { demoRunCodes } from "../../backend/chain/runs";
import type { RunShape } from "../../backend/codes/run";

/** The cast, in Hardhat account order (account 0 deploys the ledger and is its first regulator). */
export const CAST = [
  "regulator",
  "makerShanghai",
  "makerGuangzhou",
  "distributorEast",
  "distributorSouth",
  "pharmacyXuhui",
  "pharmacyPudong",
  "pharmacyTianhe",
  "insurerShanghai",
  "insurerPingan",
] as const;
export type Org = (typeof CAST)[number];

type Role = "manufacturer" | "distributor" | "pharmacy" | "insurer";
const ORGS: Record<
  Exclude<Org, "regulator">,
  { role: Role; name: string; licence: string; region: string; prefixes?: string[] }
> = {
  makerShanghai: {
    role: "manufacturer",
    name: "上海海康制药 Shanghai Haikang Pharmaceutical",
    licence: "沪20160001",
    region: "310000",
    prefixes: ["CN:86123"],
  },
  makerGuangzhou: {
    role: "manufacturer",
    name: "广州白云山制药 Guangzhou Baiyun Pharma (GS1)",
    licence: "粤20180007",
    region: "440100",
    prefixes: ["GS1:690123"],
  },
  distributorEast: {
    role: "distributor",
    name: "华东医药物流 East China Medical Logistics",
    licence: "沪AA0210001",
    region: "310000",
  },
  distributorSouth: {
    role: "distributor",
    name: "华南医药配送 South China Pharma Distribution",
    licence: "粤AA0200003",
    region: "440100",
  },
  pharmacyXuhui: { role: "pharmacy", name: "徐汇大药房 Xuhui Pharmacy", licence: "沪CB0210001", region: "310104" },
  pharmacyPudong: {
    role: "pharmacy",
    name: "浦东益丰药房 Pudong Yifeng Pharmacy",
    licence: "沪CB0210002",
    region: "310115",
  },
  pharmacyTianhe: {
    role: "pharmacy",
    name: "天河老百姓药房 Tianhe Laobaixing Pharmacy",
    licence: "粤CB0200009",
    region: "440106",
  },
  insurerShanghai: {
    role: "insurer",
    name: "上海市医疗保障局 Shanghai Healthcare Security",
    licence: "NHSA-310000",
    region: "310000",
  },
  insurerPingan: {
    role: "insurer",
    name: "平安健康保险 Ping An Health Insurance",
    licence: "CIRC-PAH-0001",
    region: "440300",
  },
};

export interface SeedTarget {
  url: string;
  keys: Record<Org, string>;
  accounts: Record<Org, string>;
}

/** A code worth scanning at the counter, with what the scan shows (checked by test/demo.test.ts). */
export interface CodeToScan {
  code: string;
  /** Whose key the scan is made with (a pharmacy sees NOT_IN_YOUR_CUSTODY for packs it does not hold). */
  scannedBy: Org;
  story: string;
  verdict: "OK" | "ALERT" | "UNKNOWN";
  alerts: string[];
}

export interface SeedSummary {
  participants: Record<Org, string>;
  codes: CodeToScan[];
  /** The sale a pharmacy tried of a pack it never received, refused on chain. */
  refusedSale: { pharmacy: Org; code: string; error: string };
  /** The second insurer's refused settlement. */
  refusedSettlement: { insurer: Org; claimRef: string; error: string };
}

type Answer = { status: number; body: Record<string, unknown>; text: string };

class SeedError extends Error {}

/** One API client per organisation: its key on every request, and a fresh Idempotency-Key per write. */
function client(target: SeedTarget) {
  let sequence = 0;
  const request = async (org: Org, method: string, path: string, body?: unknown, csv?: string): Promise<Answer> => {
    const headers: Record<string, string> = { authorization: `Bearer ${target.keys[org]}` };
    if (method !== "GET") headers["idempotency-key"] = `seed-${Date.now()}-${++sequence}`;
    if (csv !== undefined) headers["content-type"] = "text/csv";
    else if (body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(target.url + path, {
      method,
      headers,
      body: csv ?? (body === undefined ? undefined : JSON.stringify(body)),
    });
    const text = await res.text();
    let parsed: Record<string, unknown> = {};
    try {
      parsed = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // a non-JSON answer is kept as text for the error message
    }
    return { status: res.status, body: parsed, text };
  };
  /** A write that must succeed: anything else stops the seeding with the API's own problem detail. */
  const write = async (org: Org, path: string, body: unknown = {}, csv?: string): Promise<Record<string, unknown>> => {
    const a = await request(org, "POST", path, body, csv);
    if (a.status < 200 || a.status > 299) throw new SeedError(`${org} POST ${path}: ${a.status} ${a.text}`);
    return a.body;
  };
  return { request, write };
}

/** Waits (bounded) until the API's /healthz reports the index at the chain's head. */
async function untilIndexCaughtUp(url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const health = (await (await fetch(`${url}/healthz`)).json()) as { index?: { lagBlocks?: number } };
    if (health.index?.lagBlocks === 0) return;
    if (Date.now() > deadline) throw new SeedError(`the index did not reach the chain's head within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const DAY_MS = 86_400_000;
const day = (offset: number) => new Date(Date.now() + offset * DAY_MS).toISOString().slice(0, 10);

/** A GS1 key body with its mod-10 check digit appended. */
function gs1WithCheck(body: string): string {
  let sum = 0;
  for (let i = 0; i < body.length; i++) sum += Number(body[body.length - 1 - i]) * (i % 2 === 0 ? 3 : 1);
  return body + String((10 - (sum % 10)) % 10);
}

/** A code as printed on the pack: the parser's namespace prefix dropped. */
const scanned = (normalised: string) => normalised.replace(/^(?:CN|X):/, "");

/** A run's codes in contract order (units, then cases, then pallets) as a scanner reads them. */
function chineseRun(product7: string, shape: RunShape, serialBase: number): string[] {
  return demoRunCodes(product7, shape, serialBase).map(scanned);
}
function gs1Run(gtin: string, shape: RunShape, serialBase: number): string[] {
  const internal = demoRunCodes(gtin.slice(-7), shape, serialBase).slice(shape.unitCount).map(scanned);
  const units = Array.from({ length: shape.unitCount }, (_, i) => `(01)${gtin}(21)S${serialBase + i}`);
  return [...units, ...internal];
}

interface Run {
  batchId: number;
  codes: string[];
  shape: RunShape;
  unit(i: number): string;
  case(c: number): string;
  pallet(p: number): string;
}

export async function seedStory(
  target: SeedTarget,
  log: (msg: string) => void = () => undefined,
): Promise<SeedSummary> {
  const { request, write } = client(target);
  const acct = target.accounts;

  // The API knows the regulator only once the indexer has read the deployment: on a slow machine the seed can
  // start before that, and every write would be refused as coming from no organisation.
  await untilIndexCaughtUp(target.url);
  log("onboarding 9 organisations");
  for (const [org, o] of Object.entries(ORGS)) {
    await write("regulator", "/v1/participants", {
      account: acct[org as Org],
      role: o.role,
      name: o.name,
      licence: o.licence,
      region: o.region,
      ...(o.prefixes ? { codePrefixes: o.prefixes } : {}),
    });
  }

  const product = async (org: Org, productCode: string, name: string, approval: string, spec: string, qty: number) =>
    (
      (
        await write(org, "/v1/products", {
          productCode,
          name,
          approvalNumber: approval,
          packageSpec: spec,
          packQuantity: qty,
        })
      ).product as { id: number }
    ).id;
  const commission = async (
    org: Org,
    productId: number,
    lot: string,
    dates: [number, number],
    codes: string[],
    shape: RunShape,
  ): Promise<Run> => {
    const batch = await write(org, "/v1/batches", {
      productId,
      lot,
      manufacturedOn: day(dates[0]),
      expiresOn: day(dates[1]),
    });
    const batchId = (batch.batch as { id: number }).id;
    const csv = packingOrder(codes, shape)
      .map((l) => `${l.code},${l.level}`)
      .join("\n");
    const job = await write(org, `/v1/batches/${batchId}/commissions`, undefined, csv);
    for (;;) {
      const r = await request(org, "GET", `/v1/jobs/${String(job.jobId)}`);
      if (r.body.status !== "running") {
        if (r.body.status !== "done") throw new SeedError(`commissioning ${lot}: ${r.text}`);
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const cases = Math.ceil(shape.unitCount / shape.unitsPerCase);
    return {
      batchId,
      codes,
      shape,
      unit: (i) => codes[i]!,
      case: (c) => codes[shape.unitCount + c]!,
      pallet: (p) => codes[shape.unitCount + cases + p]!,
    };
  };
  /** Ship and have the recipient receive all of it. */
  const deliver = async (from: Org, to: Org, codes: string[]) => {
    const shipped = await write(from, "/v1/shipments", { to: acct[to], codes });
    await write(to, `/v1/shipments/${String(shipped.shipmentId)}/receive`);
  };

  log("products, batches and commissioning (CSV jobs)");
  const amoxicillin = await product(
    "makerShanghai",
    "8612345",
    "阿莫西林胶囊 Amoxicillin Capsules 0.25g",
    "国药准字H31020001",
    "0.25g×24粒/盒",
    24,
  );
  const metformin = await product(
    "makerShanghai",
    "8612346",
    "二甲双胍片 Metformin Tablets 0.5g",
    "国药准字H31020002",
    "0.5g×48片/盒",
    48,
  );
  const gtinIbuprofen = gs1WithCheck("0690123400001");
  const gtinOmeprazole = gs1WithCheck("0690123400002");
  const ibuprofen = await product(
    "makerGuangzhou",
    gtinIbuprofen,
    "布洛芬缓释胶囊 Ibuprofen SR Capsules 0.3g",
    "国药准字H44020003",
    "0.3g×20粒/盒",
    20,
  );
  const omeprazole = await product(
    "makerGuangzhou",
    gtinOmeprazole,
    "奥美拉唑肠溶胶囊 Omeprazole Capsules 20mg",
    "国药准字H44020004",
    "20mg×14粒/盒",
    14,
  );

  const big: RunShape = { unitCount: 200, unitsPerCase: 20, casesPerPallet: 5 };
  const small: RunShape = { unitCount: 40, unitsPerCase: 20, casesPerPallet: 2 };
  const amx = await commission(
    "makerShanghai",
    amoxicillin,
    "AMX2611A",
    [-30, 700],
    chineseRun("8612345", big, 1),
    big,
  );
  const met = await commission(
    "makerShanghai",
    metformin,
    "MET2609R",
    [-60, 600],
    chineseRun("8612346", small, 1),
    small,
  );
  const old = await commission(
    "makerShanghai",
    amoxicillin,
    "AMX2411E",
    [-700, -3],
    chineseRun("8612345", small, 5001),
    small,
  );
  const ibu = await commission("makerGuangzhou", ibuprofen, "IBU26B07", [-20, 700], gs1Run(gtinIbuprofen, big, 1), big);
  const ome = await commission(
    "makerGuangzhou",
    omeprazole,
    "OME26C01",
    [-10, 500],
    gs1Run(gtinOmeprazole, small, 1),
    small,
  );

  log("shipments and receipts");
  await deliver("makerShanghai", "distributorEast", [amx.pallet(0), met.pallet(0), old.pallet(0)]);
  await deliver("distributorEast", "pharmacyXuhui", [amx.case(0), amx.case(1), met.case(0), old.case(0)]);
  await deliver("distributorEast", "pharmacyPudong", [amx.case(2)]);
  // A short delivery: Pudong receives one of the two cases shipped, the distributor takes the other back.
  const short = await write("distributorEast", "/v1/shipments", {
    to: acct.pharmacyPudong,
    codes: [amx.case(3), amx.case(4)],
  });
  await write("pharmacyPudong", `/v1/shipments/${String(short.shipmentId)}/receive`, { codes: [amx.case(3)] });
  await write("distributorEast", `/v1/shipments/${String(short.shipmentId)}/return`);
  await deliver("makerGuangzhou", "distributorSouth", [ibu.pallet(0), ome.pallet(0)]);
  await deliver("distributorSouth", "pharmacyTianhe", [ibu.case(0), ibu.case(1), ome.case(0)]);

  log("dispensing (whole and split packs, one undone)");
  await write("pharmacyXuhui", "/v1/dispense", {
    codes: [amx.unit(0), amx.unit(1), amx.unit(2)],
    prescriptionHash: "RX-XH-20261201-001",
  });
  await write("pharmacyXuhui", "/v1/dispense/partial", {
    code: amx.unit(3),
    quantity: 8,
    prescriptionHash: "RX-XH-20261201-002",
  });
  await write("pharmacyPudong", "/v1/dispense", {
    codes: [amx.unit(40), amx.unit(41)],
    prescriptionHash: "RX-PD-20261201-001",
  });
  await write("pharmacyPudong", "/v1/dispense/undo", { codes: [amx.unit(41)] });
  await write("pharmacyTianhe", "/v1/dispense", {
    codes: [ibu.unit(0), ibu.unit(1)],
    prescriptionHash: "RX-TH-20261201-001",
  });

  log("claims and settlements; the second insurer refused");
  const claim = async (pharmacy: Org, insurer: Org, claimRef: string, lines: { code: string; quantity?: number }[]) => {
    await write(pharmacy, "/v1/claims", { insurer: acct[insurer], claimRef, lines });
    return request(insurer, "POST", "/v1/claims/settle", { claimRef });
  };
  const settled = await claim("pharmacyXuhui", "insurerShanghai", "SH-YB-2026-000123", [
    { code: amx.unit(0) },
    { code: amx.unit(1) },
    { code: amx.unit(3), quantity: 8 },
  ]);
  if (settled.status !== 200) throw new SeedError(`settlement: ${settled.text}`);
  const tianhe = await claim("pharmacyTianhe", "insurerPingan", "PAH-GZ-2026-004711", [{ code: ibu.unit(0) }]);
  if (tianhe.status !== 200) throw new SeedError(`settlement: ${tianhe.text}`);
  const rival = await claim("pharmacyXuhui", "insurerPingan", "PAH-SH-2026-009001", [{ code: amx.unit(0) }]);
  if (rival.status !== 409) throw new SeedError(`the rival settlement was not refused: ${rival.status} ${rival.text}`);

  log("a recall; a sale of a pack never received");
  await write("makerShanghai", `/v1/batches/${met.batchId}/recall`, {
    reason: "溶出度不合格 dissolution out of specification",
  });
  // Tianhe never received Xuhui's packs: the ledger refuses the sale, the service raises an alert.
  const stray = amx.unit(5);
  const sale = await request("pharmacyTianhe", "POST", "/v1/dispense", { codes: [stray] });
  if (sale.status < 400 || sale.status > 499) throw new SeedError(`the stray sale was not refused: ${sale.text}`);
  const saleError = (sale.body.error as { name?: string } | undefined)?.name ?? String(sale.body.title);

  const counterfeit = chineseRun("8612345", { unitCount: 1, unitsPerCase: 1, casesPerPallet: 1 }, 999_999)[0]!;
  return {
    participants: { ...acct },
    codes: [
      {
        code: amx.unit(10),
        scannedBy: "pharmacyXuhui",
        story: "Amoxicillin in stock at Xuhui Pharmacy: sell it",
        verdict: "OK",
        alerts: [],
      },
      {
        code: ibu.unit(10),
        scannedBy: "pharmacyTianhe",
        story: "GS1 Ibuprofen in stock at Tianhe Pharmacy",
        verdict: "OK",
        alerts: [],
      },
      {
        code: amx.unit(0),
        scannedBy: "pharmacyXuhui",
        story: "dispensed at Xuhui and settled by Shanghai Healthcare Security; Ping An was refused",
        verdict: "ALERT",
        alerts: ["ALREADY_DISPENSED", "ALREADY_SETTLED"],
      },
      {
        code: amx.unit(41),
        scannedBy: "pharmacyPudong",
        story: "dispensed at Pudong, then undone: back in stock",
        verdict: "OK",
        alerts: [],
      },
      {
        code: met.unit(0),
        scannedBy: "pharmacyXuhui",
        story: "Metformin of recalled lot MET2609R at Xuhui",
        verdict: "ALERT",
        alerts: ["RECALLED"],
      },
      {
        code: old.unit(0),
        scannedBy: "pharmacyXuhui",
        story: "Amoxicillin of lot AMX2411E, expired three days ago",
        verdict: "ALERT",
        alerts: ["EXPIRED"],
      },
      {
        code: stray,
        scannedBy: "pharmacyTianhe",
        story: "Xuhui's pack, which Tianhe tried to sell: refused on chain, an alert",
        verdict: "ALERT",
        alerts: ["NOT_IN_YOUR_CUSTODY"],
      },
      {
        code: counterfeit,
        scannedBy: "pharmacyXuhui",
        story: "a well-formed code nobody commissioned: counterfeit",
        verdict: "UNKNOWN",
        alerts: [],
      },
    ],
    refusedSale: { pharmacy: "pharmacyTianhe", code: stray, error: saleError },
    refusedSettlement: {
      insurer: "insurerPingan",
      claimRef: "PAH-SH-2026-009001",
      error: String(rival.body.title),
    },
  };
}
