#!/usr/bin/python3
"""ctest `report.attention_forward`: the report's NumPy forward (model_np.py) against the C++ model.

For the core model and every model toggle, trains a tiny run for a few steps with spike thresholds so low
that the flight recorder writes a record, then recomputes the attention probabilities from the record's
parameters and batch and compares them with the probabilities the C++ model stored (`act.blocks.{l}.probs`).
A control recomputes with the toggle switched off in the config and requires a clearly larger difference, so
a toggle the forward ignored would fail.

usage: test_attention_forward.py --attnlab BUILD/attnlab
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (name, overrides, the overrides that switch the tested feature off for the control; None = no control)
VARIANTS = [
    ("core", [], None),
    ("sinusoidal+gelu+tied", ["model.pos=sinusoidal", "model.mlp=gelu", "model.tied_head=true"],
     ["model.pos=none"]),
    ("pos none", ["model.pos=none"], ["model.pos=rope"]),
    ("qk_norm", ["model.qk_norm=true"], ["model.qk_norm=false"]),
    ("v_scale learned", ["model.v_scale=learned"], ["model.v_scale=off"]),
    ("v_scale fixed theta=-2", ["model.v_scale=fixed", "model.v_scale_theta=-2"], ["model.v_scale=off"]),
    ("v_scale backward_only", ["model.v_scale=backward_only"], None),  # forward identical to off by design
    ("softmax+1", ["model.softmax_plus_one=true"], ["model.softmax_plus_one=false"]),
    ("sink_logit", ["model.sink_logit=true"], ["model.sink_logit=false", "model.softmax_plus_one=true"]),
    ("attn_bias_kv", ["model.attn_bias_kv=true"], ["model.attn_bias_kv=false", "model.softmax_plus_one=true"]),
    ("sigmoid", ["model.sigmoid_attn=true"], ["model.sigmoid_attn=false"]),
    ("sigmoid+bias", ["model.sigmoid_attn=true", "model.sigmoid_attn_bias=true"], ["model.sigmoid_attn_bias=false"]),
    ("temperature 2", ["model.attn_temperature=2.0"], ["model.attn_temperature=1.0"]),
    ("residual_scale 0.5", ["model.residual_scale=0.5"], ["model.residual_scale=1.0"]),
    ("embed_scale", ["model.embed_scale=true"], ["model.embed_scale=false"]),
    ("post-norm", ["model.norm_position=post"], ["model.norm_position=pre"]),
    ("sink_token", ["model.sink_token=true"], None),  # the control would change the shape
    ("sigma_reparam", ["model.sigma_reparam=true"], ["model.sigma_reparam=false"]),
    ("no skip", ["model.skip=false"], ["model.skip=true"]),
    ("attention-only, no skip, post-norm",
     ["model.mlp=none", "model.mlp_hidden=0", "model.skip=false", "model.norm_position=post"],
     ["model.skip=true"]),
    ("qk_norm+attn_bias_kv+sink_token+sinusoidal",
     ["model.qk_norm=true", "model.attn_bias_kv=true", "model.sink_token=true", "model.pos=sinusoidal"],
     ["model.qk_norm=false"]),
]

COMMON = ["train.threads=1", "train.steps=10", "train.eval_every=0", "train.eval_batches=0", "optim.lr=0.03",
          "model.init_std=0.1", "instrument.spike_min_history=2", "instrument.warn_spike_z=0.01",
          "instrument.probe_every=0", "instrument.dense_until=0"]


def apply_sets(model_section, sets):
    m = dict(model_section)
    for s in sets:
        key, val = s.split("=", 1)
        sect, k = key.split(".", 1)
        if sect == "model":
            m[k] = yaml.safe_load(val)
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--attnlab", required=True)
    args = ap.parse_args()
    t0 = time.time()
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="attnlab-fwd-") as td:
        for i, (name, sets, off) in enumerate(VARIANTS):
            run = os.path.join(td, f"run{i}")
            cmd = [args.attnlab, "train", os.path.join(ROOT, "configs", "tiny.yaml"), "--out", run, "--quiet"]
            for s in COMMON + sets:
                cmd += ["--set", s]
            r = subprocess.run(cmd, capture_output=True, text=True)
            flights = sorted(glob.glob(os.path.join(run, "flight", "*.safetensors")))
            if r.returncode != 0 or not flights:
                print(f"FAIL  {name}: training gave exit {r.returncode} and {len(flights)} flight records\n"
                      f"      {' '.join(cmd)}\n{r.stderr[-2000:]}")
                failed += 1
                continue
            with open(os.path.join(run, "config.yaml")) as f:
                model_section = yaml.safe_load(f)["model"]
            cfg = model_np.model_config(model_section)
            rec, _ = model_np.read_safetensors(flights[-1])
            tokens = rec["inputs"]
            if cfg["sink_token"]:
                tokens = tokens[:, 1:]  # the record holds the internal batch, −1 at the sink position
            probs, _ = model_np.attention_probs(cfg, rec, tokens)
            # A diagnosis record (the default) holds the maps of its first sequences only (metadata "seqs").
            S = rec["act.blocks.0.probs"].shape[0]
            err = max(float(np.abs(p[:S] - rec[f"act.blocks.{l}.probs"]).max()) for l, p in enumerate(probs))
            msg = f"{name}: max |P_numpy − P_attnlab| = {err:.2e}"
            ok = err < 2e-5
            if off is not None:
                cfg_off = model_np.model_config(apply_sets(model_section, off))
                probs_off, _ = model_np.attention_probs(cfg_off, rec, tokens)
                err_off = max(float(np.abs(p[:S] - rec[f"act.blocks.{l}.probs"]).max()) for l, p in enumerate(probs_off))
                msg += f"; control ({' '.join(off)}) {err_off:.2e}"
                ok = ok and err_off > 50 * max(err, 1e-7)
            print(("ok    " if ok else "FAIL  ") + msg)
            passed += ok
            failed += not ok
    print(f"{passed} passed, {failed} failed ({time.time() - t0:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
