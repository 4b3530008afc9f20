#!/usr/bin/python3
"""Fixtures for test/tiling.test.ts: what Pillow does when VILA tiles an image (spec Part B
§2.3-2.4), so the tests can check sr3d bit for bit without Pillow. Made with Debian's
python3-pil (Pillow 9.4.0) and python3-numpy:

    apt-get install -y python3-pil python3-numpy && /usr/bin/python3 scripts/make_resize_fixtures.py

Writes test/fixtures/resize/:
  src_<name>.png     decoded source photos (PIL's pixels of a TUM JPEG/PNG, stored losslessly
                     so the tests need no JPEG decoder)
  <case>.png         PIL's `Image.resize((w, h), BICUBIC)` output, for outputs small enough
  index.json         every case: source (a photo, a crop of one, or the `synth` pattern below),
                     output size, SHA-256 of PIL's output pixels (H*W*3 RGB bytes); the SHA-256
                     of whole tile tensors (VILA dynamic_preprocess + SiglipImageProcessor
                     rescale/normalize, float32 CHW); and PIL NEAREST index maps.

`synth(w, h, seed)` is a deterministic test pattern (a gradient with noise and blocks of full-
range noise that make the bicubic overshoot clip), defined identically in test/tiling.test.ts.
"""
import hashlib
import json
import os

import numpy as np
import PIL
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', 'test', 'fixtures', 'resize')
# The real data inside the repository: the bundled cabinet and test/data/tum_fr1_rpy.
CABINET = os.path.join(HERE, '..', 'examples', 'data', 'tum_fr3_cabinet')
RPY = os.path.join(HERE, '..', 'test', 'data', 'tum_fr1_rpy')
os.makedirs(OUT, exist_ok=True)
BICUBIC = Image.BICUBIC
NEAREST = Image.NEAREST


def synth(w, h, seed):
    """xorshift32 noise over a diagonal gradient; every third 32x32 block is full-range noise."""
    s = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1
    out = bytearray(w * h * 3)
    span = max(w + h - 2, 1)
    i = 0
    for y in range(h):
        for x in range(w):
            for c in range(3):
                s ^= (s << 13) & 0xFFFFFFFF
                s ^= s >> 17
                s ^= (s << 5) & 0xFFFFFFFF
                if ((x >> 5) + (y >> 5) + c) % 3 == 0:
                    v = s & 255
                else:
                    v = ((x + y) * 255) // span + (s & 63) - 32
                out[i] = min(255, max(0, v))
                i += 1
    return Image.frombytes('RGB', (w, h), bytes(out))


def sha(im):
    return hashlib.sha256(im.tobytes()).hexdigest()


# ---- sources -------------------------------------------------------------------------------
sources = {
    'cabinet': Image.open(os.path.join(CABINET, 'raw_imgs', '0003_rgb_raw.jpg')).convert('RGB'),
    'rpy': Image.open(os.path.join(RPY, 'rgb', sorted(os.listdir(os.path.join(RPY, 'rgb')))[0])).convert('RGB'),
}
for name, im in sources.items():
    im.save(os.path.join(OUT, f'src_{name}.png'), optimize=True)


def source(spec):
    kind = spec[0]
    if kind == 'photo':
        return sources[spec[1]]
    if kind == 'crop':  # ['crop', photo, x, y, w, h]
        _, name, x, y, w, h = spec
        return sources[name].crop((x, y, x + w, y + h))
    if kind == 'synth':  # ['synth', w, h, seed]
        return synth(spec[1], spec[2], spec[3])
    raise ValueError(spec)


# [case name, source spec, out w, out h, store the PNG]
cases = [
    ('cabinet_1792x1344', ['photo', 'cabinet'], 1792, 1344, False),  # the 4x3 grid of a 640x480 image
    ('cabinet_448x448', ['photo', 'cabinet'], 448, 448, True),       # its thumbnail
    ('cabinet_1x1', ['photo', 'cabinet'], 1, 1, True),
    ('cabinet_1x480', ['photo', 'cabinet'], 1, 480, True),
    ('cabinet_640x1', ['photo', 'cabinet'], 640, 1, True),
    ('cabinet_13x7', ['photo', 'cabinet'], 13, 7, True),
    ('cabinet_2000x37', ['photo', 'cabinet'], 2000, 37, True),
    ('cabinet_320x240', ['photo', 'cabinet'], 320, 240, True),
    ('cabinet_641x480', ['photo', 'cabinet'], 641, 480, False),      # horizontal pass only
    ('cabinet_640x479', ['photo', 'cabinet'], 640, 479, False),      # vertical pass only
    ('cabinet_640x480', ['photo', 'cabinet'], 640, 480, False),      # same size: a copy
    ('rpy_1792x1344', ['photo', 'rpy'], 1792, 1344, False),
    ('rpy_448x448', ['photo', 'rpy'], 448, 448, False),
    ('rpy_300x200', ['photo', 'rpy'], 300, 200, True),
    ('rpy_97x1000', ['photo', 'rpy'], 97, 1000, False),
    ('crop7x5_448x448', ['crop', 'cabinet', 100, 100, 7, 5], 448, 448, True),
    ('crop1x1_448x448', ['crop', 'cabinet', 321, 77, 1, 1], 448, 448, False),
    ('crop13x7_448x896', ['crop', 'rpy', 200, 150, 13, 7], 448, 896, False),
    ('crop160x120_448x336', ['crop', 'cabinet', 50, 60, 160, 120], 448, 336, True),
    ('crop1x480_448x448', ['crop', 'rpy', 333, 0, 1, 480], 448, 448, False),
    ('crop640x1_5x3', ['crop', 'rpy', 0, 240, 640, 1], 5, 3, True),
    ('synth1920x1080_1792x896', ['synth', 1920, 1080, 1], 1792, 896, False),  # 1080p: grid 4x2
    ('synth1920x1080_448x448', ['synth', 1920, 1080, 1], 448, 448, False),
    ('synth1296x968_1792x1344', ['synth', 1296, 968, 2], 1792, 1344, False),
    ('synth2000x2000_1344x1344', ['synth', 2000, 2000, 3], 1344, 1344, False),
    ('synth3x3_448x448', ['synth', 3, 3, 4], 448, 448, False),
    ('synth5000x7_448x448', ['synth', 5000, 7, 5], 448, 448, False),
    ('synth1000x300_1344x448', ['synth', 1000, 300, 6], 1344, 448, False),
    ('synth61x47_29x83', ['synth', 61, 47, 7], 29, 83, True),
]

index = {'_pillow': PIL.__version__, '_numpy': np.__version__, 'cases': [], 'tiles': [], 'nearest': []}
for name, spec, w, h, store in cases:
    src = source(spec)
    out = src.resize((w, h), BICUBIC)
    index['cases'].append({'name': name, 'source': spec, 'width': w, 'height': h, 'sha256': sha(out),
                           'png': f'{name}.png' if store else None})
    if store:
        out.save(os.path.join(OUT, f'{name}.png'), optimize=True)


# ---- whole tile tensors: VILA dynamic_preprocess + SiglipImageProcessor ----------------------
def siglip_normalize(im):
    """transformers rescale (float64 * 1/255 -> float32) then normalize with mean = std = 0.5, CHW."""
    x = np.array(im)
    x = (x.astype(np.float64) * (1 / 255)).astype(np.float32)
    mean = np.array([0.5, 0.5, 0.5], dtype=np.float32)
    std = np.array([0.5, 0.5, 0.5], dtype=np.float32)
    x = (x - mean) / std
    return x.transpose(2, 0, 1)


def dynamic_preprocess(image, cols, rows, size=448):
    resized = image.resize((size * cols, size * rows))  # PIL's default resample: BICUBIC
    tiles = [resized.crop(((i % cols) * size, (i // cols) * size, (i % cols + 1) * size, (i // cols + 1) * size))
             for i in range(cols * rows)]
    if len(tiles) != 1:
        tiles.append(image.resize((size, size)))
    return tiles


for spec, cols, rows in [(['photo', 'cabinet'], 4, 3), (['synth', 1920, 1080, 1], 4, 2), (['photo', 'rpy'], 1, 1),
                         (['crop', 'cabinet', 10, 20, 300, 100], 3, 1)]:
    tiles = np.stack([siglip_normalize(t) for t in dynamic_preprocess(source(spec), cols, rows)])
    assert tiles.dtype == np.float32
    index['tiles'].append({'source': spec, 'cols': cols, 'rows': rows, 'shape': list(tiles.shape),
                           'sha256': hashlib.sha256(np.ascontiguousarray(tiles).tobytes()).hexdigest()})


# ---- NEAREST: source index of every output pixel along one axis ------------------------------
def nearest_index(n_in, n_out):
    im = Image.new('I', (n_in, 1))
    im.putdata(list(range(n_in)))
    return list(im.resize((n_out, 1), NEAREST).getdata())


pairs = [(i, o) for i in range(1, 40) for o in range(1, 40)]
pairs += [(480, 1344), (640, 1792), (1080, 896), (1920, 1792), (1920, 448), (1080, 448), (480, 448),
          (640, 448), (2, 7), (2, 15), (3, 448), (7, 896), (1000, 3), (4999, 448), (448, 1792)]
for i, o in pairs:
    index['nearest'].append([i, o, nearest_index(i, o)])
# 2D NEAREST is the outer product of the two 1D maps (checked here, relied on by the tests).
W, H, OW, OH = 37, 23, 101, 9
im = Image.new('I', (W, H))
im.putdata(list(range(W * H)))
got = np.array(im.resize((OW, OH), NEAREST))
xs, ys = nearest_index(W, OW), nearest_index(H, OH)
assert (got == np.array([[y * W + x for x in xs] for y in ys])).all()

with open(os.path.join(OUT, 'index.json'), 'w') as f:
    json.dump(index, f, separators=(',', ':'))
total = sum(os.path.getsize(os.path.join(OUT, p)) for p in os.listdir(OUT))
print(f'Pillow {PIL.__version__}: {len(index["cases"])} resize cases, {len(index["tiles"])} tile tensors, '
      f'{len(index["nearest"])} nearest maps; {total / 1e6:.2f} MB in {OUT}')
