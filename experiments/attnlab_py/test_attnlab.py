#!/usr/bin/python3
"""ctest `python.reader` and `python.export`: the Python reader (attnlab/) and `attnlab export` on tiny real runs.

reader: trains two tiny runs with the attnlab binary (configs/tiny.yaml, one thread) into a sweep-like
  directory and checks load_run / load_sweep on them: columns and dtypes, one train record per step and one eval
  record per eval_every as the config says, the param column of the per-tensor statistics against the
  checkpoint's tensor names (and the model-wide gradient norm against the trainer's), run.json's parameter
  table against the checkpoint, the fallback for run directories without one, non-finite values and damaged
  lines, and the CRC-32 check of read_safetensors on a corrupted checkpoint.
export: `attnlab export` of an untied and a tied run; the exported model.safetensors read with the same reader,
  config.json's keys, and the logits of a rotate-half Llama forward of the export
  (torch_reference.llama_logits) against attnlab's reference model (torch_reference.Model) on the original
  checkpoint, and its loss against the C++ model's (`attnlab grads --checkpoint`); without the q/k
  permutation they would not match. Refusals: each model setting with no Llama equivalent (exit 2, naming
  key and value), a corrupt checkpoint, a non-empty --out, an unknown --format.

usage: test_attnlab.py --attnlab BUILD/attnlab [--only reader|export] [--keep]
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import attnlab  # noqa: E402

results = []


def check(ok, msg, detail=""):
    results.append(bool(ok))
    print(("ok    " if ok else "FAIL  ") + msg + ("" if ok or not detail else f"\n      {detail}"))
    return ok


STEPS, EVAL_EVERY, STEP_EVERY = 12, 4, 3


def train(binary, out, sets=(), steps=STEPS):
    cmd = [binary, "train", os.path.join(ROOT, "configs", "tiny.yaml"), "--out", out, "--quiet"]
    for s in ["train.threads=1", f"train.steps={steps}", f"train.eval_every={EVAL_EVERY}",
              f"instrument.step_every={STEP_EVERY}", "instrument.probe_every=6"] + list(sets):
        cmd += ["--set", s]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise SystemExit(f"training failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr}")
    return out


def flip_byte(path, tensor):
    """Flips one byte inside `tensor`'s data."""
    header, _, _, base = attnlab.safetensors.read_header(path)
    b, e = header[tensor]["data_offsets"]
    with open(path, "r+b") as f:
        f.seek(base + (b + e) // 2)
        c = f.read(1)
        f.seek(base + (b + e) // 2)
        f.write(bytes([c[0] ^ 0x40]))


# ---------------------------------------------------------------------------------------------------


def test_reader(binary, td):
    sweep = os.path.join(td, "sweep")
    a = train(binary, os.path.join(sweep, "lr_a"))
    train(binary, os.path.join(sweep, "lr_b"), ["optim.lr=1e-3", "model.tied_head=true"])

    run = attnlab.load_run(a)
    check(not run.problems, "load_run: no problems on a fresh run", run.problems)
    check(run.get("train.steps") == STEPS and run.get("model.d_model") == 32, "load_run: the config as a dict")
    t = run.train
    check({"step", "loss", "lr", "grad_norm", "clipped", "tokens_per_s", "ms_per_step"} <= set(t.columns),
          "train: the documented columns", list(t.columns))
    check(str(t["step"].dtype) == "int64" and str(t["loss"].dtype) == "float64" and str(t["clipped"].dtype) == "bool",
          "train: step int64, loss float64, clipped bool", str(t.dtypes.to_dict()))
    check(list(t["step"]) == list(range(1, STEPS + 1)), f"train: one record per step, 1..{STEPS} (train.steps)",
          list(t["step"]))
    check(np.isfinite(t["loss"]).all() and (t["loss"] > 0).all(), "train: finite positive losses")
    check(list(run.eval["step"]) == list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY)),
          f"eval: a record every {EVAL_EVERY} steps (train.eval_every)", list(run.eval["step"]))
    for name, df in (("probe", run.probe), ("step", run.step)):
        check(list(df.columns[:6]) == ["step", "metric", "layer", "head", "index", "value"] and len(df) > 0 and
              str(df["value"].dtype) == "float64" and str(df["layer"].dtype) == "int64",
              f"{name}: tidy columns and dtypes, {len(df)} rows")
    ps = set(run.probe["step"].unique())  # probe_every, plus the dense early probes of the defaults
    check({6, 12} <= ps and max(ps) == STEPS, "probe: steps 6 and 12 among them (instrument.probe_every=6)", sorted(ps))

    # The param column: real tensor names, the same set as the checkpoint's parameters.
    ck = run.checkpoints()
    check([s for s, _ in ck] == [STEPS], "checkpoints: the final one", ck)
    params, meta = run.read_checkpoint()
    g = run.step[run.step["metric"] == "grad_norm_p"]
    check(sorted(g["step"].unique()) == list(range(STEP_EVERY, STEPS + 1, STEP_EVERY)),
          f"step: grad_norm_p every {STEP_EVERY} steps (instrument.step_every)", sorted(g["step"].unique()))
    per_tensor = set(g[g["head"] >= 0]["param"])
    check(per_tensor == set(params), "step: the param column names exactly the checkpoint's tensors",
          f"{sorted(per_tensor ^ set(params))}")
    check(set(g[(g["head"] == -1) & (g["layer"] >= 0)]["param"]) == {"blocks.0", "blocks.1"} and
          set(g[(g["head"] == -1) & (g["layer"] == -1)]["param"]) == {"model"}, "step: block and model aggregates")
    wq = g[g["param"] == "blocks.1.attn.w_q"]
    check(len(wq) == STEPS // STEP_EVERY and (wq["layer"] == 1).all() and (wq["head"] == 1).all(),
          "step: blocks.1.attn.w_q is layer 1, slot 1 (instrument/docs/step.md)")
    logit = run.step[run.step["metric"] == "logit_absmax"]
    check(len(logit) and logit["param"].isna().all(), "step: metrics that are not per tensor have no param")
    model_gn = g[g["param"] == "model"].set_index("step")["value"]
    tgn = t.set_index("step")["grad_norm"]
    err = max(abs(model_gn[s] / tgn[s] - 1) for s in model_gn.index)
    check(err < 1e-5, f"step: grad_norm_p of 'model' equals the trainer's grad_norm (rel err {err:.1e})")
    pt = run.params
    ck_shapes = {n: list(v.shape) for n, v in params.items()}
    check(list(pt.columns) == ["name", "layer", "slot", "shape"] and
          {n: s for n, s in zip(pt["name"], pt["shape"])} == ck_shapes,
          "params: run.json's table matches the checkpoint's names and shapes")

    # Without run.json "params" (older runs) the documented slots give the same names.
    old = os.path.join(td, "old")
    shutil.copytree(a, old)
    info = json.load(open(os.path.join(old, "run.json")))
    del info["params"]
    json.dump(info, open(os.path.join(old, "run.json"), "w"))
    o = attnlab.load_run(old, kinds=("step",))
    check(list(o.step["param"].fillna("-")) == list(run.step["param"].fillna("-")),
          "an old run directory without run.json params: the same param column from the slot table")
    check(len(o.train) == 0 and len(o.step) == len(run.step), "kinds: only the step records loaded")

    # Non-finite values and damaged lines.
    bad = os.path.join(td, "bad")
    shutil.copytree(a, bad)
    with open(os.path.join(bad, "metrics.jsonl"), "a") as f:
        f.write('{"step":13,"kind":"train","loss":"nan","lr":"inf","grad_norm":"-inf","clipped":false,'
                '"tokens_per_s":1,"ms_per_step":1}\n')
        f.write("this line is not JSON\n")
        f.write('{"step":13,"kind":"step","metric":"grad_norm_p","layer":0,"head":4,"index":-1,"value":"inf"}\n')
        f.write('{"step":14,"kind":"probe","metric":"zmax","layer":0,"head":0,"index":-1,"value":"nan"}\n')
        f.write('{"step":14,"kind":"train","lo')  # a run killed mid-write
    b = attnlab.load_run(bad)
    last = b.train.iloc[-1]
    check(last["step"] == 13 and math.isnan(last["loss"]) and last["lr"] == math.inf and last["grad_norm"] == -math.inf,
          "non-finite: 'nan', 'inf', '-inf' read as floats")
    s13 = b.step[b.step["step"] == 13]
    check(len(s13) == 1 and s13["value"].iloc[0] == math.inf and s13["param"].iloc[0] == "blocks.0.attn.w_o",
          "non-finite: an inf per-tensor value keeps its param name")
    check(math.isnan(b.probe[b.probe["step"] == 14]["value"].iloc[0]), "non-finite: a nan probe value")
    n_lines = sum(1 for _ in open(os.path.join(bad, "metrics.jsonl")))
    check(b.problems == [f"metrics.jsonl line {n_lines - 3} is not JSON (skipped)"],
          "a damaged line is a problem, a truncated last line is not", b.problems)

    # CRC-32: a flipped byte is detected, named, and limited to the tensor it is in.
    ckpt = os.path.join(td, "corrupt.safetensors")
    shutil.copy(ck[-1][1], ckpt)
    flip_byte(ckpt, "blocks.0.attn.w_k")
    try:
        attnlab.read_safetensors(ckpt)
        check(False, "crc32: a corrupted tensor is refused")
    except attnlab.SafetensorsError as e:
        check("blocks.0.attn.w_k" in str(e) and "checksum" in str(e) and ckpt in str(e),
              "crc32: a corrupted tensor is refused, naming the file and the tensor", str(e))
    t2, _ = attnlab.read_safetensors(ckpt, names=lambda n: n == "tok_emb")
    check(np.array_equal(t2["tok_emb"], params["tok_emb"]), "crc32: the intact tensors still read")
    t3, _ = attnlab.read_safetensors(ckpt, verify=False)
    check(not np.array_equal(t3["blocks.0.attn.w_k"], params["blocks.0.attn.w_k"]), "crc32: verify=False reads it")
    for junk, what in ((b"\x01\x02", "truncated"), (b"\xff" * 8 + b"{}", "exceeds")):
        p = os.path.join(td, "junk.safetensors")
        open(p, "wb").write(junk)
        try:
            attnlab.read_safetensors(p)
            check(False, f"a {what} file is refused")
        except attnlab.SafetensorsError as e:
            check(what in str(e), f"a {what} file is refused: {e}")
    # The writer's files read back, checksums included, and the C++ reader accepts them (attnlab grads --batch).
    p = os.path.join(td, "w.safetensors")
    src = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "i": np.array([[1, -1]], np.int32)}
    attnlab.write_safetensors(p, src, {"k": "v"})
    back, m2 = attnlab.read_safetensors(p)
    raw_meta = attnlab.safetensors.read_header(p)[1]
    check(m2 == {"k": "v"} and all(np.array_equal(back[k], src[k]) for k in src) and "crc32.a" in raw_meta,
          "write_safetensors: round trip with crc32 entries")

    # load_sweep: both runs, concatenated frames with a run column.
    sw = attnlab.load_sweep(sweep)
    check([os.path.basename(r.path) for r in sw.runs] == ["lr_a", "lr_b"], "load_sweep: both runs, by name")
    st = sw.train
    check(list(st.columns[:2]) == ["run", "step"] and st.groupby("run").size().to_dict() == {"lr_a": STEPS, "lr_b": STEPS},
          "load_sweep: train with a run column, train.steps records per run")
    cfg = sw.config.set_index("run")
    check(cfg.loc["lr_b", "optim.lr"] == 1e-3 and bool(cfg.loc["lr_b", "model.tied_head"]),
          "load_sweep: the flattened configs, one row per run")
    tied = sw.runs[1].step
    check("lm_head" not in set(tied["param"].dropna()) and "tok_emb" in set(tied["param"].dropna()),
          "load_sweep: the tied run has no lm_head tensor")
    try:
        attnlab.load_run(td)
        check(False, "load_run on a directory that is not a run is refused")
    except FileNotFoundError as e:
        check("not a run directory" in str(e), "load_run on a directory that is not a run is refused")


# ---------------------------------------------------------------------------------------------------


def test_export(binary, td):
    sys.path.insert(0, os.path.join(ROOT, "experiments", "bench"))
    import torch
    import torch_reference as tr

    torch.set_num_threads(1)

    def export(src, out, *extra):
        return subprocess.run([binary, "export", src, "--format", "hf-llama", "--out", out, *extra],
                              capture_output=True, text=True, timeout=120)

    for tag, sets in (("untied", []), ("tied", ["model.tied_head=true"])):
        run_dir = train(binary, os.path.join(td, "exp_" + tag), sets)
        out = os.path.join(td, "hf_" + tag)
        r = export(run_dir, out)  # a run directory: its newest checkpoint
        if not check(r.returncode == 0, f"{tag}: attnlab export exits 0", r.stderr):
            continue
        check(sorted(os.listdir(out)) == ["config.json", "model.safetensors"], f"{tag}: config.json + model.safetensors")
        conf = json.load(open(os.path.join(out, "config.json")))
        want = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=32, intermediate_size=64,
                    num_attention_heads=4, num_key_value_heads=4, num_hidden_layers=2, vocab_size=32,
                    max_position_embeddings=16, rms_norm_eps=1e-5, rope_theta=10000.0,
                    tie_word_embeddings=(tag == "tied"), hidden_act="silu", torch_dtype="float32")
        diff = {k: (conf.get(k), v) for k, v in want.items() if conf.get(k) != v}
        check(not diff, f"{tag}: config.json", diff)
        hf, meta = attnlab.read_safetensors(os.path.join(out, "model.safetensors"))
        names = {"model.embed_tokens.weight", "model.norm.weight"} | ({"lm_head.weight"} if tag == "untied" else set())
        for l in range(2):
            names |= {f"model.layers.{l}.{n}.weight" for n in (
                "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
                "mlp.up_proj", "mlp.down_proj", "input_layernorm", "post_attention_layernorm")}
        check(set(hf) == names and meta.get("format") == "pt", f"{tag}: the Llama tensor names, {len(hf)} tensors",
              sorted(set(hf) ^ names))

        run = attnlab.load_run(run_dir, kinds=())
        params, _ = run.read_checkpoint()
        mcfg = tr.model_config(**{k: v for k, v in run.config["model"].items() if k in tr.model_config()})
        ref = tr.Model(mcfg, dtype=torch.float64)
        ref.load_named(params)
        tokens = torch.randint(0, 32, (3, 16), generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            want_logits = ref(tokens)
            got = tr.llama_logits(hf, conf, tokens)
            got32 = tr.llama_logits(hf, conf, tokens, dtype=torch.float32).double()
        err = (got - want_logits).abs().max().item()
        err32 = (got32 - want_logits).abs().max().item()
        check(err < 1e-10 and err32 < 1e-5, f"{tag}: rotate-half Llama logits of the export == attnlab's reference "
              f"model on the checkpoint (max |diff| {err:.1e} float64, {err32:.1e} float32)")
        # The permutation is what makes it match: the unpermuted q/k rows give other logits.
        raw = dict(hf)
        for l in range(2):
            for n, w in (("q", "w_q"), ("k", "w_k")):
                raw[f"model.layers.{l}.self_attn.{n}_proj.weight"] = params[f"blocks.{l}.attn.{w}"]
        with torch.no_grad():
            err_raw = (tr.llama_logits(raw, conf, tokens) - want_logits).abs().max().item()
        check(err_raw > 1e-4, f"{tag}: without the q/k permutation the logits differ ({err_raw:.1e})")
        # Against the C++ model: its loss on the first training batch.
        g = os.path.join(td, f"grads_{tag}.safetensors")
        r = subprocess.run([binary, "grads", os.path.join(run_dir, "config.yaml"), "--checkpoint",
                            run.checkpoints()[-1][1], "--out", g], capture_output=True, text=True, timeout=120)
        if check(r.returncode == 0, f"{tag}: attnlab grads --checkpoint", r.stderr):
            gt, _ = attnlab.read_safetensors(g, names=lambda n: n in ("loss", "inputs", "targets"))
            inp = torch.from_numpy(gt["inputs"].astype(np.int64))
            tgt = torch.from_numpy(gt["targets"].astype(np.int64))
            with torch.no_grad():
                loss = tr.loss_fn(tr.llama_logits(hf, conf, inp), tgt).item()
            c_loss = float(gt["loss"].reshape(-1)[0])
            check(abs(loss - c_loss) < 1e-5 * max(1.0, abs(c_loss)),
                  f"{tag}: the export's loss == the C++ model's ({loss:.7f} vs {c_loss:.7f})")

    # Refusals: every setting with no Llama equivalent names its key and value; exit 2; nothing written.
    cases = [(["model.mlp=gelu"], "model.mlp=gelu"), (["model.pos=sinusoidal"], "model.pos=sinusoidal"),
             (["model.qk_norm=true"], "model.qk_norm=true"), (["model.sink_token=true"], "model.sink_token=true"),
             (["model.v_scale=learned"], "model.v_scale=learned"),
             (["model.residual_scale=0.5", "model.embed_scale=true"], "model.residual_scale=0.5")]
    for sets, key in cases:
        run_dir = train(binary, os.path.join(td, "refuse_" + "_".join(s.split("=")[0][6:] for s in sets)), sets, steps=1)
        out = os.path.join(td, "out_refused")
        r = export(run_dir, out)
        ok = r.returncode == 2 and key in r.stderr and "no Hugging Face Llama equivalent" in r.stderr
        if len(sets) > 1:
            ok = ok and "model.embed_scale=true" in r.stderr
        check(ok and not os.path.exists(out), f"refused: {', '.join(sets)} (exit 2, names {key})",
              f"exit {r.returncode}: {r.stderr.strip()}")
    z = train(binary, os.path.join(td, "zloss"), ["model.z_loss=1e-4"], steps=1)
    r = export(z, os.path.join(td, "hf_zloss"))
    check(r.returncode == 0, "model.z_loss (training only) is exported", r.stderr)

    src = os.path.join(td, "exp_untied")
    ck = attnlab.checkpoints(src)[-1][1]
    bad = os.path.join(td, "corrupt_ckpt.safetensors")
    shutil.copy(ck, bad)
    flip_byte(bad, "blocks.1.mlp.w_up")
    r = export(bad, os.path.join(td, "out_corrupt"))
    check(r.returncode == 2 and "blocks.1.mlp.w_up" in r.stderr, "refused: a corrupt checkpoint (exit 2, names the tensor)",
          r.stderr.strip())
    r = export(ck, os.path.join(td, "hf_untied"))
    check(r.returncode == 2 and "not empty" in r.stderr, "refused: a non-empty --out (exit 2)", r.stderr.strip())
    r = export(ck, os.path.join(td, "out_fmt"), "--format", "gguf")
    check(r.returncode == 2 and "gguf" in r.stderr, "refused: an unknown --format (exit 2)", r.stderr.strip())
    r = subprocess.run([binary, "export", ck], capture_output=True, text=True)
    check(r.returncode == 2 and "--out" in r.stderr, "refused: no --out (exit 2)", r.stderr.strip())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--attnlab", required=True)
    ap.add_argument("--only", choices=("reader", "export"))
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    td = tempfile.mkdtemp(prefix="attnlab-py-")
    try:
        if args.only in (None, "reader"):
            test_reader(os.path.abspath(args.attnlab), td)
        if args.only in (None, "export"):
            test_export(os.path.abspath(args.attnlab), td)
    finally:
        if args.keep:
            print(f"kept {td}")
        else:
            shutil.rmtree(td, ignore_errors=True)
    n_fail = results.count(False)
    print(f"{len(results) - n_fail}/{len(results)} checks passed")
    return 1 if n_fail or not results else 0


if __name__ == "__main__":
    sys.exit(main())
