#!/usr/bin/python3
"""The torch numbers in test/region.test.ts ("reproduces torch 1.13 MaskPooling"): SpatialRGPT's
MaskPooling.forward (llava/model/region_extractor/base_extractor.py @ 16715d4, spec Part B §6.1)
run on formula-defined masks and features, so the test can rebuild the same inputs.

    /usr/bin/python3 scripts/make_maskpool_fixtures.py     # torch 1.13.1 (Debian python3-torch) was used

Prints the downsampled masks (x4: every value is a multiple of 1/4 for patch 14) and the pooled
features (float32, as torch's einsum rounds them); the test embeds these literals.
"""
import torch
import torch.nn as nn


def mask_pooling(x, mask):
    """MaskPooling.forward for one image: x [1, L, C], mask [M, Hm, Wm] (the reference's steps)."""
    x_len = x.size(1)
    mask_hw = mask.size(-1) * mask.size(-2)
    scale_factor = (x_len / mask_hw) ** 0.5
    mask = mask.float()[None, ...]
    mask = nn.functional.interpolate(mask, scale_factor=scale_factor, mode="bilinear")
    mask = mask.to(x.dtype)[0]
    denorm = mask.sum(dim=(-1, -2)) + 1e-8
    denorm = denorm.unsqueeze(-1)
    mask = mask.flatten(start_dim=1)
    return torch.einsum("lc,ml->mc", x[0], mask / denorm), mask


def main():
    h, w, P, C = 2, 3, 14, 4
    H, W = h * P, w * P
    m = torch.zeros(4, H, W, dtype=torch.uint8)
    m[0, 3:20, 5:30] = 1                      # covers two block centres
    m[1, 0:3, 0:3] = 1                        # covers no block centre: the zero vector
    for y in range(H):
        for x in range(W):
            if (y * 7 + x * 3) % 5 == 0:
                m[2, y, x] = 1                # a sparse pattern
    m[3, 6, 21] = 1                           # one pixel of token (0, 1)'s centre
    feats = torch.tensor([[((l * 7 + c * 3) % 11 - 5) / 4 for c in range(C)] for l in range(h * w)],
                         dtype=torch.float32)[None]
    out, d = mask_pooling(feats, m)
    print("torch", torch.__version__)
    print("torchD4 =", (d * 4).round().int().tolist())
    print("torchOut =", [[float(v) for v in row] for row in out])


if __name__ == "__main__":
    main()
