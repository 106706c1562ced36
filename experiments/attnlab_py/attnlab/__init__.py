"""attnlab's Python reader: run and sweep directories as pandas DataFrames, safetensors files as NumPy arrays.

    import sys; sys.path.insert(0, "<repo>/experiments/attnlab_py")
    import attnlab
    run = attnlab.load_run("runs/tiny")            # .train .eval .probe .step .events .params .config
    sweep = attnlab.load_sweep("runs/sweep")       # .runs, .train (with a `run` column), .summary, ...
    tensors, meta = attnlab.read_safetensors("runs/tiny/ckpt/step_00000050.safetensors")

Needs only Debian packages (python3-numpy, python3-pandas; python3-yaml for configs). README.md beside this
package has a worked example.
"""
from .runs import (PER_TENSOR_METRICS, RunData, SweepData, checkpoints, find_run_dirs, flatten, is_run_dir,
                   load_run, load_sweep, num)
from .safetensors import CHECKSUM_PREFIX, SafetensorsError, read_safetensors, write_safetensors

__all__ = ["load_run", "load_sweep", "read_safetensors", "write_safetensors", "SafetensorsError", "RunData",
           "SweepData", "PER_TENSOR_METRICS", "CHECKSUM_PREFIX", "checkpoints", "find_run_dirs", "flatten",
           "is_run_dir", "num"]
