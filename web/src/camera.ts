/**
 * Camera scanning of DataMatrix and Code 128: the barcode-detector ponyfill on zxing's WebAssembly reader, whose
 * .wasm is bundled and served by us (zxing would otherwise fetch it from a CDN: nothing at a counter without
 * internet, and refused by our CSP anyway).
 */
import { BarcodeDetector, prepareZXingModule } from "barcode-detector/ponyfill";
import wasmUrl from "zxing-wasm/reader/zxing_reader.wasm?url";

prepareZXingModule({
  overrides: { locateFile: (path: string, prefix: string) => (path.endsWith(".wasm") ? wasmUrl : prefix + path) },
});

const FORMATS = ["data_matrix", "code_128"] as const;
const EVERY_MS = 120;

export interface CameraScan {
  stop(): void;
}

/** Starts the camera into `video`; calls `found` with the first code read, then stops. */
export async function startCameraScan(video: HTMLVideoElement, found: (raw: string) => void): Promise<CameraScan> {
  const detector = new BarcodeDetector({ formats: [...FORMATS] });
  const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  let running = true;
  const stop = (): void => {
    running = false;
    for (const track of stream.getTracks()) track.stop();
    video.srcObject = null;
    video.hidden = true;
  };
  video.srcObject = stream;
  video.hidden = false;
  await video.play();
  const tick = async (): Promise<void> => {
    if (!running) return;
    try {
      const codes = await detector.detect(video);
      const first = codes.find((c) => c.rawValue.length > 0);
      if (first && running) {
        stop();
        found(first.rawValue);
        return;
      }
    } catch {
      // A frame the detector cannot read yet (the video still starting): try the next one.
    }
    setTimeout(() => void tick(), EVERY_MS);
  };
  void tick();
  return { stop };
}
