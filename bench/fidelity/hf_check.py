#!/usr/bin/env python3
"""Fidelity check against Hugging Face transformers, part 2 (needs torch, transformers,
safetensors; runs on the lent GPU machine, whose image has them). Loads the tiny checkpoint
written by dump.js with the reference implementations - transformers' SiglipVisionModel and
Qwen2ForCausalLM, and VILA's mlp_downsample_3x3_fix projector as published (DownSample3x3BlockFix
+ LayerNorm/Linear/GELU stack) - in float32, and compares with our engine's outputs.
    python3 bench/fidelity/hf_check.py <dump dir>
Prints a table; exit status 1 when a comparison misses its bound."""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
try:
    from safetensors.torch import load_file
except ImportError:  # a minimal reader (F32/F16/BF16) where the safetensors package is missing
    def load_file(path):
        raw = open(path, "rb").read()
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8:8 + n])
        data = raw[8 + n:]
        out = {}
        for k, v in header.items():
            if k == "__metadata__":
                continue
            b, e = v["data_offsets"]
            buf = np.frombuffer(data[b:e], dtype={"F32": "<f4", "F16": "<f2", "BF16": "<u2"}[v["dtype"]])
            if v["dtype"] == "BF16":
                buf = (buf.astype(np.uint32) << 16).view(np.float32)
            out[k] = torch.from_numpy(buf.astype(np.float32).reshape(v["shape"]))
        return out

d = sys.argv[1]
ck = os.path.join(d, "ckpt")
ours = json.load(open(os.path.join(d, "ours.json")))
torch.manual_seed(0)


def load(cls, sub):
    try:
        return cls.from_pretrained(os.path.join(ck, sub), dtype=torch.float32).eval()
    except TypeError:
        return cls.from_pretrained(os.path.join(ck, sub), torch_dtype=torch.float32).eval()


def rel(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


rows = []
failed = 0


def check(name, err, bound):
    global failed
    ok = err <= bound
    failed += 0 if ok else 1
    rows.append((name, f"{err:.2e}", f"{bound:.0e}", "ok" if ok else "FAIL"))


# VILA's projector, as published (llava/model/multimodal_projector/base_projector.py).
def flat_square_3x3(x):
    n, w, h, c = x.size()
    if w % 3 != 0:
        x = torch.concat([x, torch.zeros((n, 3 - (w % 3), h, c), dtype=x.dtype)], dim=1).contiguous()
        n, w, h, c = x.size()
    x = x.contiguous()
    if h % 3 != 0:
        x = torch.concat([x, torch.zeros((n, w, 3 - (h % 3), c), dtype=x.dtype)], dim=2).contiguous()
        n, w, h, c = x.size()
    x = x.view(n, w, int(h / 3), int(c * 3))
    x = x.permute(0, 2, 1, 3).contiguous()
    x = x.view(n, int(h / 3), int(w / 3), int(c * 9))
    x = x.permute(0, 2, 1, 3).contiguous()
    return x


class DownSample3x3BlockFix(nn.Module):
    def forward(self, x):
        h = w = int(x.shape[1] ** 0.5)
        x = x.reshape(x.shape[0], h, w, -1)
        x = flat_square_3x3(x)
        return x.reshape(x.shape[0], -1, x.shape[-1])


with torch.no_grad():
    try:
        from transformers import Qwen2ForCausalLM, SiglipVisionModel
    except ImportError:
        Qwen2ForCausalLM = SiglipVisionModel = None
        print("transformers is not installed: only the projector is checked")
    feats = np.load(os.path.join(d, "feats.npy"))
    if SiglipVisionModel is not None:
        tiles = torch.from_numpy(np.load(os.path.join(d, "tiles.npy")))
        vm = load(SiglipVisionModel, "vision_tower")
        hs = vm(pixel_values=tiles, output_hidden_states=True).hidden_states[ours["selectLayer"]]
        check(f"SigLIP hidden_states[{ours['selectLayer']}] (2 tiles)", rel(feats, hs.numpy()), 1e-4)

    sd = load_file(os.path.join(ck, "mm_projector", "model.safetensors"))
    c9 = sd["layers.1.weight"].shape[0]
    mid = sd["layers.2.weight"].shape[0]
    llm_h = sd["layers.7.weight"].shape[0]
    proj = nn.Sequential(DownSample3x3BlockFix(), nn.LayerNorm(c9), nn.Linear(c9, mid), nn.GELU(),
                         nn.LayerNorm(mid), nn.Linear(mid, llm_h), nn.GELU(), nn.Linear(llm_h, llm_h))
    # nn.Sequential names its children 0..7; the checkpoint's keys are layers.1.weight, …
    proj.load_state_dict({k[len("layers."):]: v.float() for k, v in sd.items()})
    ref_proj = proj(torch.from_numpy(feats)).numpy()
    check("projector (on our SigLIP output)", rel(np.load(os.path.join(d, "proj.npy")), ref_proj), 1e-4)

    if Qwen2ForCausalLM is None:
        llm = None
    else:
        llm = load(Qwen2ForCausalLM, "llm")
    ids = torch.tensor([ours["ids"]])
    if llm is not None:
        out = llm(input_ids=ids, use_cache=True)
        check("Qwen2 last-position logits", rel(np.load(os.path.join(d, "logits.npy")), out.logits[0, -1].numpy()), 1e-4)
        past = out.past_key_values
        nxt = int(out.logits[0, -1].argmax())
        toks = [nxt]
        for _ in range(len(ours["tokens"]) - 1):
            o = llm(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past = o.past_key_values
            nxt = int(o.logits[0, -1].argmax())
            toks.append(nxt)
        same = sum(int(a == b) for a, b in zip(toks, ours["tokens"]))
        check(f"greedy tokens equal ({same}/{len(toks)})", len(toks) - same, 0)

tv = __import__("transformers").__version__ if Qwen2ForCausalLM is not None else "missing"
print(f"reference: transformers {tv}, torch {torch.__version__}; ours on {ours['device']}")
print("check | rel. error | bound | result")
for r in rows:
    print(" | ".join(r))
sys.exit(1 if failed else 0)
