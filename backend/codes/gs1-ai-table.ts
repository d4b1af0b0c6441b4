/**
 * The complete table of GS1 Application Identifiers: format, length and data title of each.
 *
 * Source: GS1 General Specifications, section 3 "GS1 Application Identifier definitions" (Release 25.0, January
 * 2025), in the machine-readable form GS1 publishes as the GS1 Barcode Syntax Dictionary (gs1-syntax-dictionary.txt,
 * github.com/gs1/gs1-syntax-dictionary, Apache-2.0; © BWIPP, Zint and GS1 AISBL), transcribed at the state that
 * includes AIs 03, 716-717, 7041, 7250-7259, 8014 and 8040-8043. Mandatory and exclusive AI pairings and Digital Link
 * key qualifiers are not transcribed: this parser needs only formats. To update, compare with the dictionary's
 * newest release and edit the rows below.
 *
 * A row is `[AIs, flags, spec, title]`:
 * - AIs: one AI or a range (`3100-3105`, `91-99`);
 * - flags: `*` = predefined length (the General Specifications' table of AIs whose element needs no GS separator
 *   even when another element follows); `d` = the AI's last digit is the number of implied decimal places;
 * - spec: components separated by spaces, each `Type[,check...]`: `N` digits, `X` CSET 82, `Y` CSET 39, `Z` URL-safe
 *   base64; `N6` exactly 6, `X..20` 1 to 20; `[...]` an optional last component. Checks are the dictionary's
 *   linter names; the ones this parser applies are listed in gs1-elements.ts.
 */
type Row = readonly [ais: string, flags: "" | "*" | "d" | "*d", spec: string, title: string];

const MEASURES: readonly (readonly [prefix: string, title: string])[] = [
  ["310", "NET WEIGHT (kg)"],
  ["311", "LENGTH (m)"],
  ["312", "WIDTH (m)"],
  ["313", "HEIGHT (m)"],
  ["314", "AREA (m²)"],
  ["315", "NET VOLUME (l)"],
  ["316", "NET VOLUME (m³)"],
  ["320", "NET WEIGHT (lb)"],
  ["321", "LENGTH (in)"],
  ["322", "LENGTH (ft)"],
  ["323", "LENGTH (yd)"],
  ["324", "WIDTH (in)"],
  ["325", "WIDTH (ft)"],
  ["326", "WIDTH (yd)"],
  ["327", "HEIGHT (in)"],
  ["328", "HEIGHT (ft)"],
  ["329", "HEIGHT (yd)"],
  ["330", "GROSS WEIGHT (kg)"],
  ["331", "LENGTH (m), log"],
  ["332", "WIDTH (m), log"],
  ["333", "HEIGHT (m), log"],
  ["334", "AREA (m²), log"],
  ["335", "VOLUME (l), log"],
  ["336", "VOLUME (m³), log"],
  ["337", "KG PER m²"],
  ["340", "GROSS WEIGHT (lb)"],
  ["341", "LENGTH (in), log"],
  ["342", "LENGTH (ft), log"],
  ["343", "LENGTH (yd), log"],
  ["344", "WIDTH (in), log"],
  ["345", "WIDTH (ft), log"],
  ["346", "WIDTH (yd), log"],
  ["347", "HEIGHT (in), log"],
  ["348", "HEIGHT (ft), log"],
  ["349", "HEIGHT (yd), log"],
  ["350", "AREA (in²)"],
  ["351", "AREA (ft²)"],
  ["352", "AREA (yd²)"],
  ["353", "AREA (in²), log"],
  ["354", "AREA (ft²), log"],
  ["355", "AREA (yd²), log"],
  ["356", "NET WEIGHT (tr oz)"],
  ["357", "NET VOLUME (oz)"],
  ["360", "NET VOLUME (qt)"],
  ["361", "NET VOLUME (gal.)"],
  ["362", "VOLUME (qt), log"],
  ["363", "VOLUME (gal.), log"],
  ["364", "VOLUME (in³)"],
  ["365", "VOLUME (ft³)"],
  ["366", "VOLUME (yd³)"],
  ["367", "VOLUME (in³), log"],
  ["368", "VOLUME (ft³), log"],
  ["369", "VOLUME (yd³), log"],
];

/** Trade measures 31nn-36nn: six digits, the AI's last digit (0-5) places the decimal point. */
const MEASURE_ROWS: Row[] = MEASURES.map(([prefix, title]) => [`${prefix}0-${prefix}5`, "*d", "N6", title]);

const ROWS: readonly Row[] = [
  ["00", "*", "N18,csum", "SSCC"],
  ["01", "*", "N14,csum", "GTIN"],
  ["02", "*", "N14,csum", "CONTENT"],
  ["03", "*", "N14,csum", "MTO GTIN"],
  ["10", "", "X..20", "BATCH/LOT"],
  ["11", "*", "N6,yymmd0", "PROD DATE"],
  ["12", "*", "N6,yymmd0", "DUE DATE"],
  ["13", "*", "N6,yymmd0", "PACK DATE"],
  ["15", "*", "N6,yymmd0", "BEST BEFORE or BEST BY"],
  ["16", "*", "N6,yymmd0", "SELL BY"],
  ["17", "*", "N6,yymmd0", "USE BY or EXPIRY"],
  ["20", "*", "N2", "VARIANT"],
  ["21", "", "X..20", "SERIAL"],
  ["22", "", "X..20", "CPV"],
  ["235", "", "X..28", "TPX"],
  ["240", "", "X..30", "ADDITIONAL ID"],
  ["241", "", "X..30", "CUST. PART No."],
  ["242", "", "N..6", "MTO VARIANT"],
  ["243", "", "X..20", "PCN"],
  ["250", "", "X..30", "SECONDARY SERIAL"],
  ["251", "", "X..30", "REF. TO SOURCE"],
  ["253", "", "N13,csum [X..17]", "GDTI"],
  ["254", "", "X..20", "GLN EXTENSION COMPONENT"],
  ["255", "", "N13,csum [N..12]", "GCN"],
  ["30", "", "N..8", "VAR. COUNT"],
  ...MEASURE_ROWS,
  ["37", "", "N..8", "COUNT"],
  ["3900-3909", "d", "N..15", "AMOUNT"],
  ["3910-3919", "d", "N3,iso4217 N..15", "AMOUNT"],
  ["3920-3929", "d", "N..15", "PRICE"],
  ["3930-3939", "d", "N3,iso4217 N..15", "PRICE"],
  ["3940-3943", "d", "N4", "PRCNT OFF"],
  ["3950-3955", "d", "N6", "PRICE/UoM"],
  ["400", "", "X..30", "ORDER NUMBER"],
  ["401", "", "X..30", "GINC"],
  ["402", "", "N17,csum", "GSIN"],
  ["403", "", "X..30", "ROUTE"],
  ["410", "*", "N13,csum", "SHIP TO LOC"],
  ["411", "*", "N13,csum", "BILL TO"],
  ["412", "*", "N13,csum", "PURCHASE FROM"],
  ["413", "*", "N13,csum", "SHIP FOR LOC"],
  ["414", "*", "N13,csum", "LOC No."],
  ["415", "*", "N13,csum", "PAY TO"],
  ["416", "*", "N13,csum", "PROD/SERV LOC"],
  ["417", "*", "N13,csum", "PARTY"],
  ["420", "", "X..20", "SHIP TO POST"],
  ["421", "", "N3,iso3166 X..9", "SHIP TO POST"],
  ["422", "", "N3,iso3166", "ORIGIN"],
  ["423", "", "N3,iso3166 [N3] [N3] [N3] [N3]", "COUNTRY - INITIAL PROCESS"],
  ["424", "", "N3,iso3166", "COUNTRY - PROCESS"],
  ["425", "", "N3,iso3166 [N3] [N3] [N3] [N3]", "COUNTRY - DISASSEMBLY"],
  ["426", "", "N3,iso3166", "COUNTRY - FULL PROCESS"],
  ["427", "", "X..3", "ORIGIN SUBDIVISION"],
  ["4300", "", "X..35,pcenc", "SHIP TO COMP"],
  ["4301", "", "X..35,pcenc", "SHIP TO NAME"],
  ["4302", "", "X..70,pcenc", "SHIP TO ADD1"],
  ["4303", "", "X..70,pcenc", "SHIP TO ADD2"],
  ["4304", "", "X..70,pcenc", "SHIP TO SUB"],
  ["4305", "", "X..70,pcenc", "SHIP TO LOC"],
  ["4306", "", "X..70,pcenc", "SHIP TO REG"],
  ["4307", "", "X2,iso3166alpha2", "SHIP TO COUNTRY"],
  ["4308", "", "X..30", "SHIP TO PHONE"],
  ["4309", "", "N10,latitude N10,longitude", "SHIP TO GEO"],
  ["4310", "", "X..35,pcenc", "RTN TO COMP"],
  ["4311", "", "X..35,pcenc", "RTN TO NAME"],
  ["4312", "", "X..70,pcenc", "RTN TO ADD1"],
  ["4313", "", "X..70,pcenc", "RTN TO ADD2"],
  ["4314", "", "X..70,pcenc", "RTN TO SUB"],
  ["4315", "", "X..70,pcenc", "RTN TO LOC"],
  ["4316", "", "X..70,pcenc", "RTN TO REG"],
  ["4317", "", "X2,iso3166alpha2", "RTN TO COUNTRY"],
  ["4318", "", "X..20", "RTN TO POST"],
  ["4319", "", "X..30", "RTN TO PHONE"],
  ["4320", "", "X..35,pcenc", "SRV DESCRIPTION"],
  ["4321", "", "N1,yesno", "DANGEROUS GOODS"],
  ["4322", "", "N1,yesno", "AUTH TO LEAVE"],
  ["4323", "", "N1,yesno", "SIG REQUIRED"],
  ["4324", "", "N6,yymmd0 N4,hhmi", "NOT BEF DEL DT"],
  ["4325", "", "N6,yymmd0 N4,hhmi", "NOT AFT DEL DT"],
  ["4326", "", "N6,yymmdd", "REL DATE"],
  ["4330", "", "N6 [X1],hyphen", "MAX TEMP F."],
  ["4331", "", "N6 [X1],hyphen", "MAX TEMP C."],
  ["4332", "", "N6 [X1],hyphen", "MIN TEMP F."],
  ["4333", "", "N6 [X1],hyphen", "MIN TEMP C."],
  ["7001", "", "N13", "NSN"],
  ["7002", "", "X..30", "MEAT CUT"],
  ["7003", "", "N6,yymmdd N4,hhmi", "EXPIRY TIME"],
  ["7004", "", "N..4", "ACTIVE POTENCY"],
  ["7005", "", "X..12", "CATCH AREA"],
  ["7006", "", "N6,yymmdd", "FIRST FREEZE DATE"],
  ["7007", "", "N6,yymmdd [N6],yymmdd", "HARVEST DATE"],
  ["7008", "", "X..3", "AQUATIC SPECIES"],
  ["7009", "", "X..10", "FISHING GEAR TYPE"],
  ["7010", "", "X..2", "PROD METHOD"],
  ["7011", "", "N6,yymmdd [N4],hhmi", "TEST BY DATE"],
  ["7020", "", "X..20", "REFURB LOT"],
  ["7021", "", "X..20", "FUNC STAT"],
  ["7022", "", "X..20", "REV STAT"],
  ["7023", "", "X..30", "GIAI - ASSEMBLY"],
  ["7030", "", "N3,iso3166999 X..27", "PROCESSOR # 0"],
  ["7031", "", "N3,iso3166999 X..27", "PROCESSOR # 1"],
  ["7032", "", "N3,iso3166999 X..27", "PROCESSOR # 2"],
  ["7033", "", "N3,iso3166999 X..27", "PROCESSOR # 3"],
  ["7034", "", "N3,iso3166999 X..27", "PROCESSOR # 4"],
  ["7035", "", "N3,iso3166999 X..27", "PROCESSOR # 5"],
  ["7036", "", "N3,iso3166999 X..27", "PROCESSOR # 6"],
  ["7037", "", "N3,iso3166999 X..27", "PROCESSOR # 7"],
  ["7038", "", "N3,iso3166999 X..27", "PROCESSOR # 8"],
  ["7039", "", "N3,iso3166999 X..27", "PROCESSOR # 9"],
  ["7040", "", "N1 X1 X1 X1,importeridx", "UIC+EXT"],
  ["7041", "", "X..4,packagetype", "UFRGT UNIT TYPE"],
  ["710", "", "X..20", "NHRN PZN"],
  ["711", "", "X..20", "NHRN CIP"],
  ["712", "", "X..20", "NHRN CN"],
  ["713", "", "X..20", "NHRN DRN"],
  ["714", "", "X..20", "NHRN AIM"],
  ["715", "", "X..20", "NHRN NDC"],
  ["716", "", "X..20", "NHRN AIC"],
  ["717", "", "X..20", "NHRN SRN"],
  ["7230", "", "X2 X..28", "CERT # 1"],
  ["7231", "", "X2 X..28", "CERT # 2"],
  ["7232", "", "X2 X..28", "CERT # 3"],
  ["7233", "", "X2 X..28", "CERT # 4"],
  ["7234", "", "X2 X..28", "CERT # 5"],
  ["7235", "", "X2 X..28", "CERT # 6"],
  ["7236", "", "X2 X..28", "CERT # 7"],
  ["7237", "", "X2 X..28", "CERT # 8"],
  ["7238", "", "X2 X..28", "CERT # 9"],
  ["7239", "", "X2 X..28", "CERT # 10"],
  ["7240", "", "X..20", "PROTOCOL"],
  ["7241", "", "N2,mediatype", "AIDC MEDIA TYPE"],
  ["7242", "", "X..25", "VCN"],
  ["7250", "", "N8,yyyymmdd", "DOB"],
  ["7251", "", "N8,yyyymmdd N4,hhmi", "DOB TIME"],
  ["7252", "", "N1,iso5218", "BIO SEX"],
  ["7253", "", "X..40,pcenc", "FAMILY NAME"],
  ["7254", "", "X..40,pcenc", "GIVEN NAME"],
  ["7255", "", "X..10", "SUFFIX"],
  ["7256", "", "X..90,pcenc", "FULL NAME"],
  ["7257", "", "X..70,pcenc", "PERSON ADDR"],
  ["7258", "", "X3,posinseqslash", "BIRTH SEQUENCE"],
  ["7259", "", "X..40,pcenc", "BABY"],
  ["8001", "", "N4,nonzero N5,nonzero N3,nonzero N1,winding N1", "DIMENSIONS"],
  ["8002", "", "X..20", "CMT No."],
  ["8003", "", "N1,zero N13,csum [X..16]", "GRAI"],
  ["8004", "", "X..30", "GIAI"],
  ["8005", "", "N6", "PRICE PER UNIT"],
  ["8006", "", "N14,csum N4,pieceoftotal", "ITIP"],
  ["8007", "", "X..34,iban", "IBAN"],
  ["8008", "", "N6,yymmdd N2,hh [N2],mi [N2],ss", "PROD TIME"],
  ["8009", "", "X..50", "OPTSEN"],
  ["8010", "", "Y..30", "CPID"],
  ["8011", "", "N..12,nozeroprefix", "CPID SERIAL"],
  ["8012", "", "X..20", "VERSION"],
  ["8013", "", "X..25,csumalpha", "GMN"],
  ["8014", "", "X..25,csumalpha,hasnondigit", "MUDI"],
  ["8017", "", "N18,csum", "GSRN - PROVIDER"],
  ["8018", "", "N18,csum", "GSRN - RECIPIENT"],
  ["8019", "", "N..10", "SRIN"],
  ["8020", "", "X..25", "REF No."],
  ["8026", "", "N14,csum N4,pieceoftotal", "ITIP CONTENT"],
  ["8030", "", "Z..90", "DIGSIG"],
  ["8040", "", "N15", "IMEI"],
  ["8041", "", "N15", "IMEI2"],
  ["8042", "", "N32", "ESIM"],
  ["8043", "", "N18 [N..2]", "PSIM"],
  ["8110", "", "X..70,couponcode", "COUPON"],
  ["8111", "", "N4", "POINTS"],
  ["8112", "", "X..70,couponposoffer", "POSITIVE OFFER FILE COUPON"],
  ["8200", "", "X..70", "PRODUCT URL"],
  ["90", "", "X..30", "INTERNAL"],
  ["91-99", "", "X..90", "INTERNAL"],
];

export type CharacterSet = "N" | "X" | "Y" | "Z";

export interface AiComponent {
  charset: CharacterSet;
  min: number;
  max: number;
  optional: boolean;
  checks: readonly string[];
}

export interface AiSpec {
  ai: string;
  title: string;
  /** Predefined length: the element ends after `maxLength` characters, no GS separator follows. */
  predefinedLength: boolean;
  /** The value has one length only (every component fixed, none optional): the element cannot run on. */
  fixedLength: boolean;
  minLength: number;
  maxLength: number;
  /** Implied decimal places (the AI's last digit) for measures and amounts. */
  decimals?: number;
  /** The components without their checks, for messages: `N6 N4`, `X..20`. */
  format: string;
  components: readonly AiComponent[];
}

function parseComponent(text: string): AiComponent {
  const [typeText, ...checks] = text.split(",");
  const optional = typeText!.startsWith("[");
  const type = optional ? typeText!.slice(1, -1) : typeText!;
  const charset = type[0] as CharacterSet;
  const variable = type.startsWith("..", 1);
  const length = Number(type.slice(variable ? 3 : 1));
  if (!"NXYZ".includes(charset) || !Number.isInteger(length) || length < 1) {
    throw new Error(`GS1 AI table: bad component "${text}"`);
  }
  return { charset, min: variable ? 1 : length, max: length, optional, checks };
}

function expand(ais: string): string[] {
  const [from, to] = ais.split("-");
  if (to === undefined) return [from!];
  const out: string[] = [];
  for (let n = Number(from); n <= Number(to); n++) out.push(String(n).padStart(from!.length, "0"));
  return out;
}

function buildTable(): Map<string, AiSpec> {
  const table = new Map<string, AiSpec>();
  for (const [ais, flags, spec, title] of ROWS) {
    const components = spec.split(" ").map(parseComponent);
    for (const ai of expand(ais)) {
      if (table.has(ai)) throw new Error(`GS1 AI table: AI ${ai} listed twice`);
      const decimals = flags.includes("d") ? Number(ai[ai.length - 1]) : undefined;
      table.set(ai, {
        ai,
        title,
        predefinedLength: flags.includes("*"),
        fixedLength: components.every((c) => c.min === c.max && !c.optional),
        minLength: components.reduce((sum, c) => sum + (c.optional ? 0 : c.min), 0),
        maxLength: components.reduce((sum, c) => sum + c.max, 0),
        ...(decimals !== undefined ? { decimals } : {}),
        format: spec.replace(/,[a-z0-9]+/g, ""),
        components,
      });
    }
  }
  return table;
}

const TABLE = buildTable();

/**
 * Length of the AIs that begin with each two-digit prefix. GS1 keeps AIs prefix-free and gives all AIs sharing
 * their first two digits one length, so the prefix says how many digits to read (and names an unknown AI whole).
 */
const AI_LENGTH_BY_PREFIX = new Map<string, number>();
for (const ai of TABLE.keys()) {
  const prefix = ai.slice(0, 2);
  const known = AI_LENGTH_BY_PREFIX.get(prefix);
  if (known !== undefined && known !== ai.length) throw new Error(`GS1 AI table: prefix ${prefix} has two lengths`);
  AI_LENGTH_BY_PREFIX.set(prefix, ai.length);
}

export function aiSpec(ai: string): AiSpec | undefined {
  return TABLE.get(ai);
}

/** How many digits the AI starting with these two digits has, or undefined when no AI starts so. */
export function aiLength(prefix: string): number | undefined {
  return AI_LENGTH_BY_PREFIX.get(prefix);
}

export function allAis(): IterableIterator<AiSpec> {
  return TABLE.values();
}
