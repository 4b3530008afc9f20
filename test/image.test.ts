// readImage / readDepth against what the reference does (PIL Image.open().convert("RGB")),
// from fixtures made by scripts/make_image_fixtures.py with Debian's Pillow 9.4.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { readDepth, readImage } from '../lib/image';
import { InvalidArgumentError } from '../lib/errors';
import { CABINET_DIR, RPY_DIR, readDepthPng } from './helpers';

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
