/**
 * Image and depth-map input. The reference opens images with PIL
 * `Image.open(path).convert("RGB")`, so this module reproduces that exactly:
 *  - EXIF orientation is NOT applied and embedded ICC profiles are ignored;
 *  - RGBA/LA drop alpha (no compositing), greyscale is replicated, palettes are expanded;
 *  - 16-bit colour PNGs keep the high byte (PIL's `RGB;16B` raw mode).
 * PNG is decoded with pngjs (lossless: any correct decoder is exact); JPEG with sharp
 * (libvips + libjpeg-turbo, the decoder PIL uses: pixel-identical on the test photos).
 * Corrupt, truncated or unsupported files raise an {@link InvalidArgumentError} naming the file.
 */
import { promises as fsp } from 'fs';
import { PNG } from 'pngjs';

import { invalidArgument } from './errors';
import { toNdArray } from './tensor';
import type { NdArray } from './tensor';

/** A file path, or the file's bytes. */
export type ImageSource = string | Uint8Array;

type Format = 'png' | 'jpeg';

async function load(src: ImageSource, name: string): Promise<{ bytes: Uint8Array; label: string }> {
  if (typeof src === 'string') {
    try {
      return { bytes: await fsp.readFile(src), label: `'${src}'` };
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw invalidArgument('a readable image file', `'${src}'`, `${err.code ?? 'an error'} (${err.message})`, true);
    }
  }
  if (src instanceof Uint8Array) return { bytes: src, label: `${name} (${src.length} bytes)` };
  throw invalidArgument('a file path or a Uint8Array/Buffer of file bytes', name, src);
}

function sniff(bytes: Uint8Array): Format | string {
  const b = bytes;
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return 'png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length === 0) return 'an empty file';
  const sigs: [string, number[]][] = [['BMP', [0x42, 0x4d]], ['GIF', [0x47, 0x49, 0x46]], ['TIFF', [0x49, 0x49, 0x2a]],
    ['TIFF', [0x4d, 0x4d, 0x00, 0x2a]], ['WebP/RIFF', [0x52, 0x49, 0x46, 0x46]]];
  for (const [fmt, sig] of sigs) if (sig.every((v, i) => b[i] === v)) return `a ${fmt} file`;
  return `a file starting with bytes ${Array.from(b.slice(0, 4), (x) => x.toString(16).padStart(2, '0')).join(' ')}`;
}

interface DecodedPng {
  width: number;
  height: number;
  depth: number;      // bits per sample
  colorType: number;  // 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA
  rgba: Uint8Array | Uint16Array;
}

function decodePng(bytes: Uint8Array, label: string): DecodedPng {
  try {
    const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { skipRescale: true });
    const meta = png as unknown as { depth: number; colorType: number };
    return { width: png.width, height: png.height, depth: meta.depth, colorType: meta.colorType, rgba: png.data as unknown as Uint8Array | Uint16Array };
  } catch (e) {
    throw invalidArgument('a complete, valid PNG file', label, `a truncated or corrupt one (${(e as Error).message})`, true);
  }
}

const COLOR_TYPES: Record<number, string> = { 0: 'greyscale', 2: 'RGB', 3: 'palette', 4: 'greyscale+alpha', 6: 'RGBA' };

// The slice of sharp's API used here (its own typings differ between its CJS/ESM builds).
type SharpFn = (input: Uint8Array, options: { ignoreIcc: boolean; failOn: string }) => {
  raw(): { toBuffer(o: { resolveWithObject: true }): Promise<{ data: Buffer; info: { width: number; height: number; channels: number } }> };
};
let sharpModule: SharpFn | undefined;
function sharp(): SharpFn {
  // Loaded on first JPEG only: libvips is large and PNG-only users never need it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  sharpModule ??= require('sharp') as SharpFn;
  return sharpModule;
}

async function decodeJpeg(bytes: Uint8Array, label: string): Promise<NdArray<Uint8Array>> {
  let data: Buffer, info: { width: number; height: number; channels: number };
  try {
    // ignoreIcc: PIL does not colour-manage; no .rotate(): PIL ignores EXIF orientation.
    // failOn 'warning': a truncated JPEG is an error (libjpeg would pad it with grey).
    const out = await sharp()(bytes, { ignoreIcc: true, failOn: 'warning' }).raw().toBuffer({ resolveWithObject: true });
    data = out.data;
    info = out.info;
  } catch (e) {
    throw invalidArgument('a complete, valid JPEG file', label, `a truncated or corrupt one (${(e as Error).message})`, true);
  }
  const { width, height, channels } = info;
  const out = new Uint8Array(width * height * 3);
  if (channels === 3) {
    out.set(data.subarray(0, out.length));
  } else if (channels === 1) {
    for (let i = 0; i < width * height; i++) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = data[i];
  } else {
    throw invalidArgument('an RGB or greyscale JPEG', label, `a JPEG with ${channels} channels (CMYK is not supported)`, true);
  }
  return toNdArray(out, [height, width, 3]);
}

/**
 * Reads a PNG (8/16-bit greyscale, grey+alpha, RGB, RGBA, palette, interlaced) or JPEG
 * (baseline or progressive, RGB or greyscale) as PIL's `Image.open(f).convert("RGB")` would.
 *
 * @param src file path, or the file's bytes.
 * @returns (H,W,3) uint8.
 */
export async function readImage(src: ImageSource): Promise<NdArray<Uint8Array>> {
  const { bytes, label } = await load(src, 'src');
  const fmt = sniff(bytes);
  if (fmt === 'jpeg') return decodeJpeg(bytes, label);
  if (fmt !== 'png') throw invalidArgument('a PNG or JPEG image', label, fmt, true);
  const png = decodePng(bytes, label);
  const n = png.width * png.height;
  const out = new Uint8Array(3 * n);
  // pngjs expands every colour type to RGBA (grey replicated, palette looked up).
  const shift = png.depth === 16 && png.colorType !== 0 ? 8 : 0;
  if (png.depth === 16 && png.colorType === 0) {
    // 16-bit greyscale opens as PIL mode I;16, whose RGB conversion clips to 255.
    for (let i = 0; i < n; i++) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = Math.min(png.rgba[4 * i], 255);
  } else {
    for (let i = 0; i < n; i++) {
      out[3 * i] = png.rgba[4 * i] >> shift;
      out[3 * i + 1] = png.rgba[4 * i + 1] >> shift;
      out[3 * i + 2] = png.rgba[4 * i + 2] >> shift;
    }
  }
  return toNdArray(out, [png.height, png.width, 3]);
}

/**
 * Reads a depth map stored as a 16-bit greyscale PNG (TUM, ScanNet, …): the raw sensor
 * units, to be scaled with `depthScale` (TUM: 1/5000 m, ScanNet: 1/1000 m).
 *
 * @param src file path, or the file's bytes.
 * @returns (H,W) uint16.
 */
export async function readDepth(src: ImageSource): Promise<NdArray<Uint16Array>> {
  const { bytes, label } = await load(src, 'src');
  const fmt = sniff(bytes);
  if (fmt !== 'png') {
    throw invalidArgument('a 16-bit greyscale PNG depth map', label, fmt === 'jpeg' ? 'a JPEG (lossy: not a depth map)' : fmt, true);
  }
  const png = decodePng(bytes, label);
  if (png.depth !== 16 || png.colorType !== 0) {
    throw invalidArgument('a 16-bit greyscale PNG depth map', label,
      `a ${png.depth}-bit ${COLOR_TYPES[png.colorType] ?? `colour type ${png.colorType}`} PNG`, true);
  }
  const n = png.width * png.height;
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = png.rgba[4 * i];
  return toNdArray(out, [png.height, png.width]);
}
