#!/usr/bin/python3
"""Regenerate the JPEG test corpus and its expected decodes (manifest.json).

Run from the repo root with Debian's python3-pil (Pillow 9.4, libjpeg-turbo 2.1.5) and libjpeg-turbo-progs (cjpeg):
    /usr/bin/python3 tests/data/jpeg/make.py
The expected value of each file is sha256 of np.asarray(Image.open(f).convert('RGB')).tobytes(): Pillow's default
decode (ISLOW IDCT, fancy upsampling, no EXIF rotation, no colour management), which src/vision/jpeg.ts reproduces.
"""
import hashlib, io, json, os, subprocess, tempfile
import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, '..', '..', 'fixtures', 'vision')
src0 = Image.open(os.path.join(FIX, 'image_0.png')).convert('RGB')
src1 = Image.open(os.path.join(FIX, 'image_1.png')).convert('RGB')
crop = src0.crop((200, 100, 245, 129))          # 45×29: edges not multiples of 8/16
crop2 = src1.crop((50, 200, 111, 237))          # 61×37
# Saturated synthetic pattern: exercises clamping after the IDCT and after YCbCr→RGB.
yy, xx = np.mgrid[0:23, 0:35]
synth = Image.fromarray(np.stack([(xx * 37) % 256, (yy * 59) % 256, ((xx ^ yy) * 97) % 256], -1).astype(np.uint8))

files = {}

def pil(name, im, **kw):
    b = io.BytesIO()
    im.save(b, 'JPEG', **kw)
    files[name] = b.getvalue()

def cj(name, im, *args):
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, 'in.ppm')
        im.save(p)
        files[name] = subprocess.run(['cjpeg', *args, p], check=True, capture_output=True).stdout

def cj_scans(name, im, script, *args):
    with tempfile.TemporaryDirectory() as d:
        s = os.path.join(d, 'scans.txt')
        open(s, 'w').write(script)
        p = os.path.join(d, 'in.ppm')
        im.save(p)
        files[name] = subprocess.run(['cjpeg', '-scans', s, *args, p], check=True, capture_output=True).stdout

pil('pil_420_q90.jpg', crop, quality=90, subsampling=2)
pil('pil_422_q75.jpg', crop, quality=75, subsampling=1)
pil('pil_444_q95.jpg', crop2, quality=95, subsampling=0)
pil('pil_420_q100.jpg', crop2, quality=100, subsampling=2)
pil('pil_420_q5.jpg', synth, quality=5, subsampling=2)
pil('pil_444_q100_synth.jpg', synth, quality=100, subsampling=0)
pil('pil_prog_420_q80.jpg', crop2, quality=80, progressive=True, optimize=True)
pil('pil_gray_q85.jpg', crop.convert('L'), quality=85)
pil('pil_cmyk_q90.jpg', crop.convert('CMYK'), quality=90)
exif = Image.Exif(); exif[0x0112] = 6  # Orientation: rotate 90° CW — must be ignored, as Pillow's Image.open does
pil('pil_exif_orient6.jpg', crop, quality=90, exif=exif.tobytes())
pil('photo_420_q85.jpg', src0, quality=85)
cj('cj_prog_photo.jpg', src1, '-progressive', '-quality', '88')
cj('cj_restart_row.jpg', crop2, '-restart', '1', '-sample', '2x2')
cj('cj_restart_3mcu.jpg', crop, '-restart', '3B', '-sample', '2x1')
cj('cj_440.jpg', crop2, '-sample', '1x2')
cj('cj_411.jpg', crop, '-sample', '4x1')
cj('cj_311.jpg', crop2, '-sample', '3x1')
cj('cj_422v.jpg', synth, '-sample', '2x2,1x2,1x2')      # Cb/Cr h2v1 with respect to Y 2x2
cj('cj_420_w2.jpg', crop.crop((0, 0, 2, 7)), '-sample', '2x2')   # downsampled width 1: box upsampling
cj('cj_420_1x1.jpg', crop.crop((0, 0, 1, 1)), '-sample', '2x2')
cj('cj_420_w3.jpg', crop.crop((0, 0, 3, 5)), '-sample', '2x2')   # downsampled width 2: box, not fancy
cj('cj_420_w5.jpg', crop.crop((0, 0, 5, 3)), '-sample', '2x2')   # downsampled width 3: fancy
cj('cj_rgb.jpg', crop, '-rgb', '-quality', '90')
cj('cj_prog_restart.jpg', crop2, '-progressive', '-restart', '2B', '-sample', '2x2')
cj('cj_gray_prog.jpg', crop.convert('L'), '-grayscale', '-progressive')
cj_scans('cj_seq_noninterleaved.jpg', crop2, '0;\n1;\n2;\n', '-sample', '2x2')
cj_scans('cj_prog_sa.jpg', crop, '0,1,2: 0-0, 0, 1;\n0: 1-5, 0, 2;\n2: 1-63, 0, 0;\n1: 1-63, 0, 1;\n0: 6-63, 0, 2;\n'
         '0,1,2: 0-0, 1, 0;\n0: 1-63, 2, 1;\n1: 1-63, 1, 0;\n0: 1-63, 1, 0;\n', '-sample', '2x2')
cj('cj_arith.jpg', crop, '-arithmetic')   # Pillow decodes it; we refuse it (ImageDecodeError)

manifest = {}
for name, data in sorted(files.items()):
    open(os.path.join(HERE, name), 'wb').write(data)
    entry = {'bytes': len(data)}
    im = Image.open(io.BytesIO(data))
    entry['mode'] = im.mode
    rgb = np.asarray(im.convert('RGB'))
    entry['width'], entry['height'] = im.size
    entry['sha256'] = hashlib.sha256(rgb.tobytes()).hexdigest()
    manifest[name] = entry
json.dump(manifest, open(os.path.join(HERE, 'manifest.json'), 'w'), indent=1)
print(json.dumps(manifest, indent=1))
