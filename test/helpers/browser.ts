/**
 * A real browser for the page tests: Debian's Chromium (/usr/bin/chromium, installed by .ci/run) driven by
 * playwright-core, headless, with its background networking off, in a fresh profile each time. With `video`, the
 * fake camera plays that Y4M file (see y4mOf). Screenshots go to test-artifacts/ (gitignored).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { PNG } from "pngjs";
import bwipjs from "bwip-js";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const ARTIFACTS = resolve(__dirname, "../../test-artifacts");

const QUIET_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export interface TestBrowser {
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

export async function openBrowser(options: { video?: string } = {}): Promise<TestBrowser> {
  const profile = mkdtempSync(join(tmpdir(), "pages-chromium-"));
  const camera = options.video
    ? [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        `--use-file-for-fake-video-capture=${options.video}`,
      ]
    : [];
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...QUIET_FLAGS, ...camera],
    viewport: { width: 1024, height: 768 }, // a counter tablet in landscape
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Signs in on `/` with the key, as a person would. */
export async function signIn(page: Page, url: string, key: string): Promise<void> {
  // Signed out first, so that "Signed in" below is this key's page after its reload, not the previous key's.
  await page.goto(`${url}/`);
  await page.evaluate("sessionStorage.clear()");
  await page.reload();
  await page.locator("#whoami", { hasText: /Not signed in|未登录/ }).waitFor();
  await page.getByLabel(/API key|API 密钥/).fill(key);
  await page.getByRole("button", { name: /^(Sign in|登录)$/ }).click();
  await page.locator("#whoami", { hasText: /Signed in|已登录/ }).waitFor();
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/**
 * A Y4M video (Chromium's fake camera format) of a barcode bwip-js draws: the PNG's grey level as luma, centred
 * on white, U = V = 128, a few identical frames.
 */
export async function y4mOf(
  bcid: string,
  text: string,
  file: string,
  { scale = 6, width = 640, height = 480 }: { scale?: number; width?: number; height?: number } = {},
): Promise<string> {
  const png = PNG.sync.read(
    await bwipjs.toBuffer({ bcid, text, scale, paddingwidth: 4, paddingheight: 4, backgroundcolor: "FFFFFF" }),
  );
  if (png.width > width || png.height > height)
    throw new Error(
      `${bcid} at scale ${scale} is ${png.width}x${png.height}, larger than the ${width}x${height} frame`,
    );
  const luma = Buffer.alloc(width * height, 255);
  const left = Math.floor((width - png.width) / 2);
  const top = Math.floor((height - png.height) / 2);
  for (let y = 0; y < png.height; y++)
    for (let x = 0; x < png.width; x++) {
      const i = (y * png.width + x) * 4;
      const grey = Math.round(0.299 * png.data[i]! + 0.587 * png.data[i + 1]! + 0.114 * png.data[i + 2]!);
      const alpha = png.data[i + 3]! / 255;
      luma[(top + y) * width + left + x] = Math.round(grey * alpha + 255 * (1 - alpha));
    }
  const chroma = Buffer.alloc((width / 2) * (height / 2) * 2, 128);
  const frame = Buffer.concat([Buffer.from("FRAME\n"), luma, chroma]);
  const header = Buffer.from(`YUV4MPEG2 W${width} H${height} F10:1 Ip A1:1 C420jpeg\n`);
  writeFileSync(file, Buffer.concat([header, ...Array.from({ length: 10 }, () => frame)]));
  return file;
}
