#!/usr/bin/python3
"""Fixtures for test/image.test.ts: small images in every PNG/JPEG flavour readImage accepts,
each with what the reference does with it: PIL `Image.open(f).convert("RGB")` (which ignores
EXIF orientation and ICC profiles). Made with Debian's python3-pil (Pillow 9.4, libjpeg-turbo):

    apt-get install -y python3-pil && /usr/bin/python3 scripts/make_image_fixtures.py

Writes test/fixtures/image/<name>.<png|jpg> and <name>.rgb (raw H*W*3 bytes of the PIL result),
plus index.json with sizes and modes and the SHA-256 of PIL's pixels of the 16 TUM cabinet JPEGs.
"""
import json
import os
import random

from PIL import Image, ImageCms

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', 'test', 'fixtures', 'image')
# The real data inside the repository: the bundled cabinet and test/data/tum_fr1_rpy.
CABINET = os.path.join(HERE, '..', 'examples', 'data', 'tum_fr3_cabinet')
os.makedirs(OUT, exist_ok=True)
rng = random.Random(7)


def noise(mode, w, h):
    bands = len(Image.new(mode, (1, 1)).getbands())
    im = Image.new('RGB', (w, h))
    im.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(w * h)])
    return im if mode == 'RGB' else im.convert(mode) if bands else im


index = {}


def emit(name, im_path, pil_mode):
    ref = Image.open(im_path)
    index[name] = {'file': os.path.basename(im_path), 'width': ref.size[0], 'height': ref.size[1],
                   'mode': ref.mode, 'made_from': pil_mode}
    with open(os.path.join(OUT, name + '.rgb'), 'wb') as f:
        f.write(ref.convert('RGB').tobytes())


w, h = 17, 11
for mode in ['RGB', 'RGBA', 'L', 'LA', 'P']:
    im = noise('RGB', w, h)
    if mode == 'RGBA':
        im = im.convert('RGBA')
        im.putalpha(Image.new('L', (w, h), 77))
    elif mode == 'LA':
        im = im.convert('LA')
    elif mode == 'L':
        im = im.convert('L')
    elif mode == 'P':
        im = im.convert('P', palette=Image.ADAPTIVE, colors=16)
    path = os.path.join(OUT, f'png_{mode.lower()}.png')
    im.save(path)
    emit(f'png_{mode.lower()}', path, mode)

# 16-bit greyscale (a depth map): PIL opens it as I;16 (or I); convert('RGB') is the reference.
g16 = Image.new('I;16', (w, h))
g16.putdata([rng.randrange(65536) for _ in range(w * h)])
path = os.path.join(OUT, 'png_i16.png')
g16.save(path)
emit('png_i16', path, 'I;16')
with open(os.path.join(OUT, 'png_i16.u16'), 'wb') as f:  # the depth values, little-endian
    f.write(Image.open(path).convert('I;16').tobytes('raw', 'I;16'))

# Interlaced (Adam7) PNG.
path = os.path.join(OUT, 'png_interlaced.png')
noise('RGB', w, h).save(path, interlace=1)
emit('png_interlaced', path, 'RGB interlaced')

# JPEGs: plain, greyscale, progressive, with EXIF orientation 6, with a non-sRGB ICC profile.
photo = Image.open(os.path.join(CABINET, 'raw_imgs', '0003_rgb_raw.jpg')).convert('RGB')
crop = photo.crop((100, 80, 164, 128))
crop.save(os.path.join(OUT, 'jpg_rgb.jpg'), quality=90)
emit('jpg_rgb', os.path.join(OUT, 'jpg_rgb.jpg'), 'RGB')
crop.convert('L').save(os.path.join(OUT, 'jpg_grey.jpg'), quality=90)
emit('jpg_grey', os.path.join(OUT, 'jpg_grey.jpg'), 'L')
crop.save(os.path.join(OUT, 'jpg_progressive.jpg'), quality=85, progressive=True)
emit('jpg_progressive', os.path.join(OUT, 'jpg_progressive.jpg'), 'RGB progressive')
exif = Image.Exif()
exif[0x0112] = 6  # "rotate 90 CW": the reference ignores it
crop.save(os.path.join(OUT, 'jpg_exif6.jpg'), quality=90, exif=exif.tobytes())
emit('jpg_exif6', os.path.join(OUT, 'jpg_exif6.jpg'), 'RGB + EXIF orientation 6')
lab = ImageCms.ImageCmsProfile(ImageCms.createProfile('LAB'))
crop.save(os.path.join(OUT, 'jpg_icc.jpg'), quality=90, icc_profile=lab.tobytes())
emit('jpg_icc', os.path.join(OUT, 'jpg_icc.jpg'), 'RGB + LAB ICC profile (ignored by the reference)')

# The real photos: SHA-256 of PIL's pixels for all 16 TUM cabinet JPEGs (the test reads the
# JPEGs of the bundled cabinet).
import glob
import hashlib
index['_tum_cabinet_sha256'] = {
    os.path.basename(f): hashlib.sha256(Image.open(f).convert('RGB').tobytes()).hexdigest()
    for f in sorted(glob.glob(os.path.join(CABINET, 'raw_imgs', '*.jpg')))}

import PIL
index['_pillow'] = {'version': PIL.__version__}
with open(os.path.join(OUT, 'index.json'), 'w') as f:
    json.dump(index, f, indent=1, sort_keys=True)
print('wrote', len(index) - 2, 'fixtures to', OUT)
