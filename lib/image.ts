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

import { invalidArgument, InvalidArgumentError } from './errors';
import { toNdArray } from './tensor';
import type { NdArray } from './tensor';

/** A file path, or the file's bytes. */
export type ImageSource = string | Uint8Array;

type Format = 'png' | 'jpeg';

/**
 * Default of {@link ReadImageOptions.maxPixels}: 2^26 = 67,108,864 pixels (8192 × 8192). A
 * 16-bit RGBA PNG passes through 8 inflated + 8 expanded + 3 output bytes per pixel, so the
 * default bounds one decode to about 1.2 GB; a 30000 × 30000 header asks for 17 GB and is
 * refused before anything is inflated. The environment variable `SR3D_MAX_IMAGE_PIXELS` replaces it (the CLI
 * reads it too).
 */
export const DEFAULT_MAX_IMAGE_PIXELS = 1 << 26;

/** The pixel limit in force: `SR3D_MAX_IMAGE_PIXELS` when set to a positive integer, else {@link DEFAULT_MAX_IMAGE_PIXELS}. */
export function defaultMaxImagePixels(): number {
  const env = process.env.SR3D_MAX_IMAGE_PIXELS;
  if (env === undefined || env === '') return DEFAULT_MAX_IMAGE_PIXELS;
  const v = Number(env);
  if (!Number.isSafeInteger(v) || v < 1) {
    throw invalidArgument('a positive integer number of pixels', 'the environment variable SR3D_MAX_IMAGE_PIXELS', `'${env}'`, true);
  }
  return v;
}

/** Options of {@link readImage} and {@link readDepth}. */
export interface ReadImageOptions {
  /**
   * The most pixels (width × height) the image may have, checked against the file's header
   * before anything is decoded. Defaults to {@link defaultMaxImagePixels} (2^26).
   */
  maxPixels?: number;
  /**
   * The size the image must have (e.g. the colour image of the same frame), checked against the
   * header before anything is decoded; `what` names it in the error ("the image's size").
   * Defaults to any size.
   */
  expectSize?: { width: number; height: number; what?: string };
}

/** An image whose header gives a size other than {@link ReadImageOptions.expectSize}: refused before decoding. */
export class ImageSizeError extends InvalidArgumentError {
  /** The width and height the header gives. */
  readonly width: number;
  readonly height: number;
  constructor(message: string, width: number, height: number) {
    super(message);
    this.width = width;
    this.height = height;
  }
}

/** Width and height read from a PNG or JPEG header (no pixel data decoded). */
export interface ImageHeader {
  format: Format;
  width: number;
  height: number;
}

// A readable regular file only: a FIFO or /dev/zero would never end, and a mask path like
// /etc/passwd is refused by its signature without its bytes ever appearing in a message.
async function load(src: ImageSource, name: string): Promise<{ bytes: Uint8Array; label: string }> {
  if (typeof src === 'string') {
    const label = `'${src}'`;
    try {
      const st = await fsp.stat(src);
      if (!st.isFile()) throw invalidArgument('a regular image file', label, st.isDirectory() ? 'a folder' : 'a device, socket or pipe', true);
      return { bytes: await fsp.readFile(src), label };
    } catch (e) {
      if (e instanceof InvalidArgumentError) throw e;
      const err = e as NodeJS.ErrnoException;
      throw invalidArgument('a readable image file', label, `${err.code ?? 'an error'} (${err.message})`, true);
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
  // The file's own bytes are not echoed: the path may name a file that is not meant to be shown.
  return `a ${b.length}-byte file that is neither PNG nor JPEG`;
}

// PNG: signature, then the IHDR chunk first (PNG spec 11.2.2): length 13, "IHDR", width, height (big-endian).
function pngHeader(b: Uint8Array, label: string): ImageHeader {
  const ihdr = b.length >= 33 && b[12] === 0x49 && b[13] === 0x48 && b[14] === 0x44 && b[15] === 0x52;
  if (!ihdr) throw invalidArgument('a complete, valid PNG file', label, 'a truncated or corrupt one (no IHDR chunk after the signature)', true);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { format: 'png', width: dv.getUint32(16), height: dv.getUint32(20) };
}

// JPEG: walk the marker segments to the first SOFn (ITU T.81 B.2.2): P, Y (height), X (width).
function jpegHeader(b: Uint8Array, label: string): ImageHeader {
  let i = 2;
  while (i + 4 <= b.length) {
    if (b[i] !== 0xff) break;
    const m = b[i + 1];
    if (m === 0xff) { i++; continue; }           // fill byte
    if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) { i += 2; continue; } // no length
    if (m === 0xd9 || m === 0xda) break;          // EOI / SOS before any frame header
    const len = (b[i + 2] << 8) | b[i + 3];
    if (len < 2) break;
    const sof = m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;
    if (sof) {
      if (i + 9 > b.length) break;
      return { format: 'jpeg', height: (b[i + 5] << 8) | b[i + 6], width: (b[i + 7] << 8) | b[i + 8] };
    }
    i += 2 + len;
  }
  throw invalidArgument('a complete, valid JPEG file', label, 'a truncated or corrupt one (no frame header before the scan data)', true);
}

function readOptions(opts: ReadImageOptions | undefined): { maxPixels: number; expect?: { width: number; height: number; what: string } } {
  if (opts === undefined) return { maxPixels: defaultMaxImagePixels() };
  if (opts === null || typeof opts !== 'object') throw invalidArgument('an options object', 'options', opts);
  const maxPixels = opts.maxPixels ?? defaultMaxImagePixels();
  if (!Number.isSafeInteger(maxPixels) || maxPixels < 1) throw invalidArgument('a positive integer number of pixels', 'options.maxPixels', maxPixels);
  const e = opts.expectSize;
  if (e === undefined) return { maxPixels };
  if (e === null || typeof e !== 'object' || !Number.isSafeInteger(e.width) || !Number.isSafeInteger(e.height) || e.width < 1 || e.height < 1) {
    throw invalidArgument('{ width, height } positive integers', 'options.expectSize', e);
  }
  return { maxPixels, expect: { width: e.width, height: e.height, what: e.what ?? 'an image of the expected size' } };
}

/** The header's size against the limits, before any pixel is decoded. */
function checkHeader(h: ImageHeader, label: string, o: ReturnType<typeof readOptions>): void {
  const kind = h.format === 'png' ? 'PNG' : 'JPEG';
  if (h.width < 1 || h.height < 1) throw invalidArgument(`a ${kind} of at least 1x1 pixels`, label, `a header of ${h.width}x${h.height}`, true);
  if (o.expect && (h.width !== o.expect.width || h.height !== o.expect.height)) {
    throw new ImageSizeError(`Expected ${o.expect.what} (${o.expect.width}x${o.expect.height}) for ${label} but received a ${h.width}x${h.height} ${kind} (checked before decoding)`,
      h.width, h.height);
  }
  if (h.width * h.height > o.maxPixels) {
    throw invalidArgument(`an image of at most ${o.maxPixels} pixels (maxPixels; raise it with options.maxPixels or SR3D_MAX_IMAGE_PIXELS, or downscale the image)`,
      label, `a ${h.width}x${h.height} ${kind} header (${h.width * h.height} pixels), refused before decoding`, true);
  }
}

/**
 * Reads the width and height of a PNG or JPEG from its header, decoding no pixels.
 *
 * @param src file path, or the file's bytes.
 */
export async function readImageHeader(src: ImageSource): Promise<ImageHeader> {
  const { bytes, label } = await load(src, 'src');
  const fmt = sniff(bytes);
  if (fmt === 'png') return pngHeader(bytes, label);
  if (fmt === 'jpeg') return jpegHeader(bytes, label);
  throw invalidArgument('a PNG or JPEG image', label, fmt, true);
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
type SharpFn = (input: Uint8Array, options: { ignoreIcc: boolean; failOn: string; limitInputPixels: number }) => {
  raw(): { toBuffer(o: { resolveWithObject: true }): Promise<{ data: Buffer; info: { width: number; height: number; channels: number } }> };
};
let sharpModule: SharpFn | undefined;
function sharp(): SharpFn {
  // Loaded on first JPEG only: libvips is large and PNG-only users never need it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  sharpModule ??= require('sharp') as SharpFn;
  return sharpModule;
}

async function decodeJpeg(bytes: Uint8Array, label: string, maxPixels: number): Promise<NdArray<Uint8Array>> {
  let data: Buffer, info: { width: number; height: number; channels: number };
  try {
    // ignoreIcc: PIL does not colour-manage; no .rotate(): PIL ignores EXIF orientation.
    // failOn 'warning': a truncated JPEG is an error (libjpeg would pad it with grey).
    // limitInputPixels: libvips' own header check, behind ours (a header we misread).
    const out = await sharp()(bytes, { ignoreIcc: true, failOn: 'warning', limitInputPixels: maxPixels }).raw().toBuffer({ resolveWithObject: true });
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
 * The header's width × height is checked against `maxPixels` (and `expectSize`) before
 * anything is inflated or decoded.
 *
 * @param src file path (a regular file), or the file's bytes.
 * @returns (H,W,3) uint8.
 */
export async function readImage(src: ImageSource, opts?: ReadImageOptions): Promise<NdArray<Uint8Array>> {
  const o = readOptions(opts);
  const { bytes, label } = await load(src, 'src');
  const fmt = sniff(bytes);
  if (fmt === 'jpeg') {
    checkHeader(jpegHeader(bytes, label), label, o);
    return decodeJpeg(bytes, label, o.maxPixels);
  }
  if (fmt !== 'png') throw invalidArgument('a PNG or JPEG image', label, fmt, true);
  checkHeader(pngHeader(bytes, label), label, o);
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
 * Its header is checked as in {@link readImage} before decoding.
 *
 * @param src file path (a regular file), or the file's bytes.
 * @returns (H,W) uint16.
 */
export async function readDepth(src: ImageSource, opts?: ReadImageOptions): Promise<NdArray<Uint16Array>> {
  const o = readOptions(opts);
  const { bytes, label } = await load(src, 'src');
  const fmt = sniff(bytes);
  if (fmt !== 'png') {
    throw invalidArgument('a 16-bit greyscale PNG depth map', label, fmt === 'jpeg' ? 'a JPEG (lossy: not a depth map)' : fmt, true);
  }
  checkHeader(pngHeader(bytes, label), label, o);
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
