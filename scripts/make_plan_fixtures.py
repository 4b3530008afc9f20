#!/usr/bin/python3
"""Fixtures for test/tiling.test.ts: VILA's tiling plan (llava/mm_utils.py dynamic_preprocess,
spec Part B §2.1-2.2) as CPython 3.11 computes it, including the candidate order that comes
from iterating a Python set.

    /usr/bin/python3 scripts/make_plan_fixtures.py      # any CPython >= 3.8 (3.11 was used)

Writes test/fixtures/tiling/plans.json:
  candidates["min,max"] = the sorted candidate list for that (min_num, max_num)
  plans = [[width, height, min_num, max_num, image_size, cols, rows], ...]
  frames = [[n, count, [indices]], ...]   # np.round(np.linspace(0, n - 1, count)).astype(int)
"""
import json
import os
import random
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', 'test', 'fixtures', 'tiling')
os.makedirs(OUT, exist_ok=True)


# ---- VILA llava/mm_utils.py, verbatim logic --------------------------------------------
def candidates(min_num, max_num):
    target_ratios = set(
        (i, j)
        for n in range(min_num, max_num + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if i * j <= max_num and i * j >= min_num
    )
    return sorted(target_ratios, key=lambda x: x[0] * x[1])


def find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size):
    best_ratio_diff = float("inf")
    best_ratio = (1, 1)
    area = width * height
    for ratio in target_ratios:
        target_aspect_ratio = ratio[0] / ratio[1]
        ratio_diff = abs(aspect_ratio - target_aspect_ratio)
        if ratio_diff < best_ratio_diff:
            best_ratio_diff = ratio_diff
            best_ratio = ratio
        elif ratio_diff == best_ratio_diff:
            if area > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
                best_ratio = ratio
    return best_ratio


def plan(width, height, min_num, max_num, image_size):
    return find_closest_aspect_ratio(width / height, candidates(min_num, max_num), width, height, image_size)


# ---- fixtures ----------------------------------------------------------------------------
ranges = [(mn, mx) for mn in range(1, 7) for mx in range(mn, 25)]
ranges += [(1, 36), (1, 40), (2, 30), (4, 48), (9, 9), (12, 12), (1, 64)]
cands = {f'{mn},{mx}': candidates(mn, mx) for mn, mx in ranges}

rng = random.Random(3)
plans = []
sizes = [(448, 448), (500, 500), (640, 480), (480, 640), (1920, 1080), (1280, 720), (640, 360),
         (1000, 300), (2000, 2000), (1296, 968), (1, 1), (1, 4000), (4000, 1), (896, 448), (448, 896),
         (1344, 448), (672, 448), (1792, 896), (1793, 896)]
sizes += [(rng.randint(1, 5000), rng.randint(1, 5000)) for _ in range(400)]
sizes += [(rng.randint(1, 64) * f, rng.randint(1, 64) * f) for f in (1, 7, 14, 64) for _ in range(50)]
for w, h in sizes:
    for mn, mx, ts in [(1, 12, 448), (1, 6, 448), (2, 9, 384), (1, 24, 448), (3, 16, 224)]:
        c, r = plan(w, h, mn, mx, ts)
        plans.append([w, h, mn, mx, ts, c, r])

frames = []
for n, count in [(1, 1), (1, 8), (2, 1), (5, 32), (16, 8), (100, 32), (33, 32), (300, 32), (7, 4), (9, 4),
                 (11, 5), (2, 2), (3, 2), (1000, 7), (65, 32), (97, 16)]:
    idx = np.round(np.linspace(0, n - 1, count)).astype(int).tolist()
    frames.append([n, count, idx])

with open(os.path.join(OUT, 'plans.json'), 'w') as f:
    json.dump({'_python': sys.version.split()[0], '_numpy': np.__version__, 'candidates': cands,
               'plans': plans, 'frames': frames}, f, separators=(',', ':'))
print('wrote', len(cands), 'candidate lists,', len(plans), 'plans,', len(frames), 'frame samplings')
