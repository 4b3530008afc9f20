// readImage / readDepth against what the reference does (PIL Image.open().convert("RGB")),
// from fixtures made by scripts/make_image_fixtures.py with Debian's Pillow 9.4.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { DEFAULT_MAX_IMAGE_PIXELS, ImageSizeError, readDepth, readImage, readImageHeader } from '../lib/image';
import { InvalidArgumentError } from '../lib/errors';
import { CABINET_DIR, RPY_DIR, readDepthPng } from './helpers';
import { craftedPng } from './crafted';

const FIX = path.join(__dirname, 'fixtures', 'image');
const index = JSON.parse(fs.readFileSync(path.join(FIX, 'index.json'), 'utf8')) as Record<string, { file: string; width: number; height: number; mode: string; made_from: string }> & { _tum_cabinet_sha256: Record<string, string> };

function firstDiff(a: Uint8Array, b: Uint8Array): string {
  let n = 0, first = -1;
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i] && n++ === 0) first = i;
  return n ? `${n} bytes differ, first at ${first} (got ${a[first]}, PIL ${b[first]})` : 'identical';
}

describe('readImage equals PIL convert("RGB")', () => {
  const cases = Object.keys(index).filter((k) => !k.startsWith('_'));
  for (const name of cases) {
    const f = index[name];
    it(`${name} (${f.made_from}, PIL mode ${f.mode})`, async () => {
      const img = await readImage(path.join(FIX, f.file));
      expect(img.shape).toEqual([f.height, f.width, 3]);
      const want = new Uint8Array(fs.readFileSync(path.join(FIX, `${name}.rgb`)));
      expect(firstDiff(img.data, want)).toBe('identical');
    });
  }

  it('all 16 TUM cabinet JPEGs decode pixel-identical to PIL (SHA-256 of the pixels)', async () => {
    const dir = path.join(CABINET_DIR, 'raw_imgs');
    const files = Object.keys(index._tum_cabinet_sha256);
    expect(files.length).toBe(16);
    for (const f of files) {
      const img = await readImage(path.join(dir, f));
      expect(img.shape).toEqual([480, 640, 3]);
      expect(createHash('sha256').update(img.data).digest('hex')).toBe(index._tum_cabinet_sha256[f]);
    }
  });

  it('accepts the file bytes as well as a path', async () => {
    const bytes = fs.readFileSync(path.join(FIX, 'png_rgba.png'));
    const a = await readImage(bytes);
    const b = await readImage(path.join(FIX, 'png_rgba.png'));
    expect(Buffer.compare(Buffer.from(a.data), Buffer.from(b.data))).toBe(0);
  });

  it('a TUM fr1 RGB PNG decodes to (480, 640, 3)', async () => {
    const dir = path.join(RPY_DIR, 'rgb');
    const img = await readImage(path.join(dir, fs.readdirSync(dir).sort()[0]));
    expect(img.shape).toEqual([480, 640, 3]);
  });
});

describe('readDepth', () => {
  it('16-bit greyscale PNG: the raw values (fixture and TUM depth)', async () => {
    const d = await readDepth(path.join(FIX, 'png_i16.png'));
    expect(d.shape).toEqual([11, 17]);
    const raw = fs.readFileSync(path.join(FIX, 'png_i16.u16'));
    expect(Array.from(d.data)).toEqual(Array.from(new Uint16Array(raw.buffer, raw.byteOffset, raw.length / 2)));
    const tum = path.join(CABINET_DIR, 'depth_imgs', '0003_depth_raw.png');
    const t = await readDepth(tum);
    expect(t.shape).toEqual([480, 640]);
    expect(Array.from(t.data.slice(100000, 100100))).toEqual(Array.from(readDepthPng(tum).data.slice(100000, 100100)));
  });

  it('anything but a 16-bit greyscale PNG is a typed error naming the file', async () => {
    await expect(readDepth(path.join(FIX, 'png_rgb.png'))).rejects.toThrow(/^Expected a 16-bit greyscale PNG depth map for '.*png_rgb\.png' but received a 8-bit RGB PNG$/);
    await expect(readDepth(path.join(FIX, 'jpg_rgb.jpg'))).rejects.toThrow(/but received a JPEG \(lossy: not a depth map\)$/);
  });
});

describe('bad files are typed errors naming the file', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-img-'));
  const write = (name: string, bytes: Uint8Array) => {
    const p = path.join(tmp, name);
    fs.writeFileSync(p, bytes);
    return p;
  };
  const png = fs.readFileSync(path.join(FIX, 'png_rgb.png'));
  const jpg = fs.readFileSync(path.join(FIX, 'jpg_rgb.jpg'));
  const cases: [string, () => Promise<unknown>, RegExp][] = [
    ['missing file', () => readImage(path.join(tmp, 'nope.png')), /^Expected a readable image file for '.*nope\.png' but received ENOENT/],
    ['empty file', () => readImage(write('empty.png', new Uint8Array(0))), /^Expected a PNG or JPEG image for '.*empty\.png' but received an empty file$/],
    ['BMP', () => readImage(write('x.bmp', new Uint8Array([0x42, 0x4d, 1, 2, 3]))), /but received a BMP file$/],
    ['truncated PNG', () => readImage(write('trunc.png', png.subarray(0, png.length - 40))), /^Expected a complete, valid PNG file for '.*trunc\.png' but received a truncated or corrupt one/],
    ['corrupt PNG', () => { const b = Buffer.from(png); b.fill(0x55, 40, 80); return readImage(write('corrupt.png', b)); }, /valid PNG file for '.*corrupt\.png'/],
    ['truncated JPEG', () => readImage(write('trunc.jpg', jpg.subarray(0, jpg.length >> 1))), /^Expected a complete, valid JPEG file for '.*trunc\.jpg' but received a truncated or corrupt one/],
    ['not bytes', () => readImage(42 as never), /^Expected a file path or a Uint8Array\/Buffer of file bytes for src but received 42/],
  ];
  for (const [name, fn, re] of cases) {
    it(name, async () => {
      const e = await fn().then(() => null, (x: unknown) => x);
      expect(e).toBeInstanceOf(InvalidArgumentError);
      expect((e as Error).message).toMatch(re);
    });
  }
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
});

describe('image headers are checked before decoding (issue 10, items 2-3)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sr3d-img-hdr-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test.each([
    ['2147483647x2147483647 16-bit grey (used to abort in zlib)', 2147483647, 2147483647, 16, 0],
    ['30000x30000 16-bit grey depth bomb', 30000, 30000, 16, 0],
    ['30000x30000 RGB bomb', 30000, 30000, 8, 2],
  ])('%s is refused at once, naming the limit', async (_name, w, h, depth, ct) => {
    const bytes = craftedPng(w, h, depth, ct);
    expect(bytes.length).toBeLessThan(80);
    const t0 = Date.now();
    for (const read of [readImage, readDepth]) {
      const e = await read(bytes).then(() => null, (x: unknown) => x);
      expect(e).toBeInstanceOf(InvalidArgumentError);
      expect((e as Error).message).toMatch(new RegExp(`at most ${DEFAULT_MAX_IMAGE_PIXELS} pixels \\(maxPixels; raise it .*received a ${w}x${h} PNG header`));
    }
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  test('maxPixels is configurable (option, then SR3D_MAX_IMAGE_PIXELS) and exact at the boundary', async () => {
    const png = fs.readFileSync(path.join(FIX, 'png_rgb.png'));
    const { width, height } = await readImageHeader(png);
    expect((await readImage(png, { maxPixels: width * height })).shape).toEqual([height, width, 3]);
    await expect(readImage(png, { maxPixels: width * height - 1 })).rejects.toThrow(`at most ${width * height - 1} pixels`);
    const old = process.env.SR3D_MAX_IMAGE_PIXELS;
    try {
      process.env.SR3D_MAX_IMAGE_PIXELS = String(width * height - 1);
      await expect(readImage(png)).rejects.toThrow('SR3D_MAX_IMAGE_PIXELS');
      process.env.SR3D_MAX_IMAGE_PIXELS = 'lots';
      await expect(readImage(png)).rejects.toThrow("Expected a positive integer number of pixels for the environment variable SR3D_MAX_IMAGE_PIXELS but received 'lots'");
    } finally {
      if (old === undefined) delete process.env.SR3D_MAX_IMAGE_PIXELS; else process.env.SR3D_MAX_IMAGE_PIXELS = old;
    }
    await expect(readImage(png, { maxPixels: 0 })).rejects.toThrow('for options.maxPixels but received 0');
  });

  test('JPEG headers too: size read from the SOF segment, limit and expected size checked before sharp decodes', async () => {
    const jpg = fs.readFileSync(path.join(FIX, 'jpg_rgb.jpg'));
    const h = await readImageHeader(jpg);
    const img = await readImage(jpg);
    expect([h.height, h.width]).toEqual(img.shape.slice(0, 2));
    await expect(readImage(jpg, { maxPixels: h.width * h.height - 1 })).rejects.toThrow(`received a ${h.width}x${h.height} JPEG header`);
    const e = await readImage(jpg, { expectSize: { width: h.width + 1, height: h.height, what: "the image's size" } }).then(() => null, (x: unknown) => x);
    expect(e).toBeInstanceOf(ImageSizeError);
    expect(e).toMatchObject({ width: h.width, height: h.height });
    expect((e as Error).message).toMatch(`Expected the image's size (${h.width + 1}x${h.height})`);
  });

  test('a depth map of another size than expected is refused from its header (30000x30000 in 68 bytes)', async () => {
    const bytes = craftedPng(30000, 30000, 16, 0);
    await expect(readDepth(bytes, { expectSize: { width: 7, height: 5, what: "the image's size" }, maxPixels: 2 ** 40 }))
      .rejects.toThrow("Expected the image's size (7x5) for src (");
  });

  test('only regular files are read, and a non-image file\'s bytes never appear in the message', async () => {
    const secret = path.join(tmp, 'passwd');
    fs.writeFileSync(secret, 'root:x:0:0:root:/root:/bin/bash\n');
    const e = await readImage(secret).then(() => null, (x: unknown) => x);
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect((e as Error).message).toMatch(/^Expected a PNG or JPEG image for '.*passwd' but received a 32-byte file that is neither PNG nor JPEG$/);
    expect((e as Error).message).not.toMatch(/72 6f|root/);
    await expect(readImage(tmp)).rejects.toThrow(/Expected a regular image file for '.*' but received a folder/);
    if (fs.existsSync('/dev/zero')) await expect(readImage('/dev/zero')).rejects.toThrow('but received a device, socket or pipe');
  });
});
