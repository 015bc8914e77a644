"""Speed and memory of the inference engine (issue 6): lite vs paper at 720p, feature overhead, 4K peak RSS,
achieved GFLOP/s against a measured matrix-multiply peak, parameter counts and FLOPs.

    python benchmarks/bench_inference.py                       # markdown table on stdout
    python benchmarks/bench_inference.py --json results.json   # also machine-readable
    python benchmarks/bench_inference.py --pause-pid-file runs/train.pid   # SIGSTOP a trainer while timing

Every number is measured in this run on this machine; nothing is copied in. Timings are medians over
``--runs`` calls after one warm-up call, through ``Deblurrer`` (the path users take: uint8 in, uint8 out).
The 4K peak RSS is measured in a fresh subprocess (``resource.getrusage`` max RSS of that process).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
import torch

HD = (720, 1280)
UHD = (2160, 3840)


# --- helpers ---------------------------------------------------------------------------------------------
def test_image(h: int, w: int) -> np.ndarray:
    """scikit-image's astronaut resized to h x w, uint8 RGB (content matters little for speed).

    Resized with Pillow in uint8 so that making an 8K test frame does not itself raise the peak RSS.
    """
    from PIL import Image
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((w, h), Image.BILINEAR))


def median_time(fn, runs: int, warmup: bool = True) -> tuple[float, list[float]]:
    if warmup:
        fn()  # first-call allocations and oneDNN primitive caches
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def matmul_peak(dtype: torch.dtype = torch.float32, n: int = 4096, runs: int = 5, device: str = "cpu") -> float:
    """GFLOP/s of torch.mm on n x n matrices (best of ``runs``): the machine's practical compute peak."""
    a, b = torch.rand(n, n, device=device).to(dtype), torch.rand(n, n, device=device).to(dtype)
    sync = torch.cuda.synchronize if a.is_cuda else (lambda: None)
    torch.mm(a, b)
    sync()
    best = min(_timed(lambda: (torch.mm(a, b), sync())) for _ in range(runs))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def flops(net: torch.nn.Module, h: int, w: int) -> int:
    """FLOPs of one forward pass at h x w counted by torch.utils.flop_counter (convolutions; 2 per MAC)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 3, h, w, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net.to("meta")(x)
    return counter.get_total_flops()


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


@contextlib.contextmanager
def paused(pid_file: str | None):
    """SIGSTOP the process in ``pid_file`` (e.g. a trainer sharing the cores) and always SIGCONT it after."""
    pid = None
    if pid_file and os.path.exists(pid_file):
        with contextlib.suppress(ValueError, OSError):
            pid = int(open(pid_file).read().split()[0])
            os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)


# --- measurements -----------------------------------------------------------------------------------------
def bench_model(model: str, device: str, size: tuple[int, int], runs: int, features: bool = True,
                warmup: bool = True, precision: str = "auto") -> dict:
    """Median time of ``Deblurrer(model)`` on a uint8 RGB image, without and (optionally) with feature maps."""
    from napari_gldeblur.inference import Deblurrer

    d = Deblurrer(model, device=device, precision=precision)
    img = test_image(*size)
    last = []
    plain, plain_all = median_time(lambda: last.append(d(img, features=False)), runs, warmup)
    res = {"model": model, "size": f"{size[0]}x{size[1]}", "device": str(d.device), "precision": d.precision,
           "tile": last[-1].tile, "median_s": plain, "runs_s": plain_all}
    if features:
        with_features, feat_all = median_time(lambda: d(img, features=True), runs, warmup)
        res |= {"features_median_s": with_features, "features_runs_s": feat_all,
                "features_overhead": with_features / plain - 1}
    return res


def whole_frame(device: str, size: tuple[int, int], runs: int) -> dict:
    """The lite model on the whole frame (no tiles), to show what the CPU speed tiles gain."""
    from napari_gldeblur.inference import Deblurrer

    img = test_image(*size)
    res = {}
    for precision in ("auto", "fp32"):
        d = Deblurrer("lite", device=device, precision=precision, tile=max(size))
        res[f"{d.precision}_median_s"] = median_time(lambda: d(img, features=False), runs)[0]
    return res


def accuracy(model: str, device: str, size: tuple[int, int]) -> dict:
    """PSNR (dB) of bf16 against fp32 output, and of tiles (256 px, and the default ones) against the whole
    frame (image and maps), both at the default overlap."""
    from napari_gldeblur.evaluation import psnr
    from napari_gldeblur.inference import Deblurrer, cpu_bf16_supported

    def against_whole(tiled) -> dict:
        return {name: psnr(getattr(tiled, name) / (255.0 if name == "image" else 1.0),
                           getattr(whole, name) / (255.0 if name == "image" else 1.0))
                for name in ("image", "local_features", "global_features", "attention")}

    img = test_image(*size)
    whole = Deblurrer(model, device=device, precision="fp32", tile=max(size))(img, strength=1.0)
    small = Deblurrer(model, device=device, precision="fp32", tile=256)
    default = Deblurrer(model, device=device, precision="fp32")
    res = {"model": model, "overlap": small.overlap, "tiled256_vs_whole_db": against_whole(small(img, strength=1.0))}
    tiled = default(img, strength=1.0)
    res["default_tiles"] = tiled.tile
    res["default_tiles_vs_whole_db"] = against_whole(tiled)
    if cpu_bf16_supported() or device != "cpu":
        low = Deblurrer(model, device=device, precision="bf16", tile=max(size))(img, features=False, strength=1.0)
        res["bf16_vs_fp32_db"] = psnr(low.image / 255.0, whole.image / 255.0)
    return res


def peak_rss_child(model: str, h: int, w: int, device: str) -> None:
    """Run in a fresh process: deblur one h x w frame with features, print time and peak RSS as JSON."""
    import resource

    from napari_gldeblur.inference import Deblurrer

    d = Deblurrer(model, device=device)
    img = test_image(h, w)
    t = time.perf_counter()
    r = d(img, features=True)
    seconds = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    res = {"model": model, "size": f"{h}x{w}", "seconds": seconds, "peak_rss_bytes": rss,
           "tile": r.tile, "precision": d.precision, "device": str(d.device)}
    if d.device.type == "cuda":  # the first call includes cuDNN's set-up: time a second one too
        t = time.perf_counter()
        d(img, features=True)
        res |= {"second_call_seconds": time.perf_counter() - t,
                "peak_gpu_bytes": torch.cuda.max_memory_allocated(d.device)}
    print(json.dumps(res))


def peak_rss(model: str, size: tuple[int, int], device: str) -> dict:
    cmd = [sys.executable, __file__, "--child", model, str(size[0]), str(size[1]), device]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def bench_compile(size: tuple[int, int], runs: int) -> dict:
    """Optional: the lite network under torch.compile (fp32 and bf16) at ``size``, and its compile time."""
    from napari_gldeblur.models import load_model

    net = load_model("lite").eval().to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, *size).contiguous(memory_format=torch.channels_last)
    res = {}
    with torch.inference_mode():
        compiled = torch.compile(net, dynamic=False)
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
                t = time.perf_counter()
                compiled(x)
                res[f"compile_{name}_first_call_s"] = time.perf_counter() - t
                res[f"compiled_{name}_median_s"] = median_time(lambda: compiled(x), runs)[0]
                res[f"eager_{name}_median_s"] = median_time(lambda: net(x), runs)[0]
    return res


def bench_layouts(size: tuple[int, int], runs: int) -> dict:
    """Optional: the bare lite network in fp32 on a whole frame, default memory layout vs channels_last."""
    from napari_gldeblur.models import load_model

    net, x = load_model("lite").eval(), torch.rand(1, 3, *size)
    cl = torch.channels_last
    with torch.inference_mode():
        default = median_time(lambda: net(x), runs)[0]
        net, x = net.to(memory_format=cl), x.contiguous(memory_format=cl)
        last = median_time(lambda: net(x), runs)[0]
    return {"eager_fp32_default_layout_median_s": default, "eager_fp32_channels_last_median_s": last}


def bench_onnx(size: tuple[int, int], runs: int) -> dict:
    """Optional: the lite network exported to ONNX and run by ONNX Runtime (needs ``onnx`` + ``onnxruntime``)."""
    import io

    import onnxruntime as ort

    from napari_gldeblur.models import load_model

    class ImageOnly(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x).image

    net = load_model("lite").eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(ImageOnly(net), (torch.rand(1, 3, 64, 64),), buf, dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {2: "h", 3: "w"}}, opset_version=17)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
    x = np.random.rand(1, 3, *size).astype(np.float32)
    return {"onnxruntime_fp32_median_s": median_time(lambda: session.run(None, {"x": x}), runs)[0],
            "onnxruntime_version": ort.__version__}


# --- report -----------------------------------------------------------------------------------------------
def run(args) -> dict:
    from napari_gldeblur.inference import pick_device
    from napari_gldeblur.models import load_model
    from napari_gldeblur.network import CONFIGS, count_parameters

    device = args.device
    res: dict = {"machine": {"cpu": cpu_name(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                             "cpu_capability": torch.backends.cpu.get_cpu_capability(), "python": platform.python_version()}}
    if torch.cuda.is_available():
        res["machine"]["gpu"] = torch.cuda.get_device_name(0)
    nets = {name: load_model(name) for name in CONFIGS}  # lite: the bundled model, as Deblurrer("lite") runs it
    res["models"] = {name: {"parameters": count_parameters(net), "gflops_720p": flops(net, *HD) / 1e9}
                     for name, net in nets.items()}
    with paused(args.pause_pid_file):
        on = "cuda" if pick_device(device).type == "cuda" else "cpu"  # where the matmul peak is taken
        res["matmul_peak_gflops"] = {"fp32": matmul_peak(torch.float32, device=on)}
        if on == "cuda" or torch.backends.cpu.get_cpu_capability() != "DEFAULT":
            res["matmul_peak_gflops"]["bf16"] = matmul_peak(torch.bfloat16, device=on)
        res["lite_720p"] = bench_model("lite", device, HD, args.runs)
        from napari_gldeblur.inference import Deblurrer

        d32 = Deblurrer("lite", device=device, precision="fp32")
        img = test_image(*HD)
        res["lite_720p_fp32"] = {"median_s": median_time(lambda: d32(img, features=False), args.runs)[0]}
        dauto = Deblurrer("lite", device=device)  # auto strength adds the gate (inference.change_ratio)
        res["lite_720p_auto"] = {"median_s": median_time(lambda: dauto(img, features=False, strength="auto"),
                                                         args.runs)[0]}
        res["lite_720p_whole"] = whole_frame(device, HD, args.runs)
        res["accuracy"] = accuracy(args.model, device, HD)
        if not args.skip_paper:
            # ~50x the lite FLOPs: no warm-up run and no feature runs, or this takes many minutes on a CPU
            res["paper_720p"] = bench_model("paper", device, HD, args.paper_runs, features=False, warmup=on != "cpu")
            res["paper_over_lite"] = res["paper_720p"]["median_s"] / res["lite_720p"]["median_s"]
        if not args.skip_4k:
            res["lite_4k"] = peak_rss("lite", UHD, device)
        if args.compile:
            res["compile"] = bench_compile(HD, args.runs)
        if args.onnx:
            res["onnx"] = bench_onnx(HD, args.runs)
        if args.layouts:
            res["layouts"] = bench_layouts(HD, args.runs)
    lite = res["lite_720p"]
    res["lite_720p"]["achieved_gflops"] = res["models"]["lite"]["gflops_720p"] / lite["median_s"]
    return res


def markdown(res: dict) -> str:
    m, lite = res["machine"], res["lite_720p"]
    peak = res["matmul_peak_gflops"]
    peak_used = peak.get(lite["precision"], peak["fp32"])
    rows = [
        ("machine", f"{m['cpu']}, {m['torch_threads']} torch threads, {m['cpu_capability']}, torch {m['torch']}"
         + (f", GPU {m['gpu']}" if "gpu" in m else "")),
        ("lite: parameters / GFLOPs at 720x1280", f"{res['models']['lite']['parameters']:,} / "
         f"{res['models']['lite']['gflops_720p']:.1f}"),
        ("paper: parameters / GFLOPs at 720x1280", f"{res['models']['paper']['parameters']:,} / "
         f"{res['models']['paper']['gflops_720p']:.1f}"),
        ("lite 720x1280 RGB, median (target <= 1.0 s)",
         f"**{lite['median_s']:.3f} s** on {lite['device']} ({lite['precision']}, tile {lite['tile'] or 'whole'})"),
        ("lite 720x1280 forced fp32, median", f"{res['lite_720p_fp32']['median_s']:.3f} s"),
        ("lite 720x1280 at auto strength (the plugin's default), median", f"{res['lite_720p_auto']['median_s']:.3f} s"),
        ("lite 720x1280 whole frame (no speed tiles), median",
         ", ".join(f"{k.split('_')[0]} {v:.3f} s" for k, v in res["lite_720p_whole"].items())),
        ("lite: features overhead (target <= 10%)", f"{100 * lite['features_overhead']:+.1f}% "
         f"({lite['features_median_s']:.3f} s with features)"),
    ]
    if "paper_720p" in res:
        p = res["paper_720p"]
        rows += [("paper 720x1280 RGB, median", f"{p['median_s']:.2f} s ({p['precision']}, tile {p['tile'] or 'whole'})"),
                 ("paper / lite time (target >= 25x)", f"**{res['paper_over_lite']:.1f}x**")]
    if "lite_4k" in res:
        k = res["lite_4k"]
        rows.append(("lite 3840x2160 with features: time / peak RSS (target <= 3 GB)",
                     f"{k['seconds']:.2f} s / **{k['peak_rss_bytes'] / 1e9:.2f} GB** (tile {k['tile']})"))
        if "peak_gpu_bytes" in k:
            rows.append(("lite 3840x2160 with features on the GPU: second call / peak GPU memory",
                         f"{k['second_call_seconds']:.2f} s / {k['peak_gpu_bytes'] / 1e9:.2f} GB"))
    rows += [
        ("matmul peak (torch.mm 4096^2)", ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items())),
        ("lite achieved (conv FLOPs / time)", f"{lite['achieved_gflops']:.0f} GFLOP/s = "
         f"{100 * lite['achieved_gflops'] / peak_used:.0f}% of the {lite['precision']} matmul peak"),
    ]
    acc = res["accuracy"]
    rows.append((f"accuracy ({acc['model']}): 256-px tiles vs whole frame, overlap {acc.get('overlap', 32)} px "
                 "(target >= 45 dB)", ", ".join(f"{k} {v:.1f} dB" for k, v in acc["tiled256_vs_whole_db"].items())))
    if "default_tiles_vs_whole_db" in acc:
        rows.append((f"accuracy ({acc['model']}): default tiles {acc['default_tiles']} vs whole frame",
                     ", ".join(f"{k} {v:.1f} dB" for k, v in acc["default_tiles_vs_whole_db"].items())))
    if "bf16_vs_fp32_db" in acc:
        rows.append((f"accuracy ({acc['model']}): bf16 vs fp32 output", f"{acc['bf16_vs_fp32_db']:.1f} dB"))
    for key, value in {**res.get("compile", {}), **res.get("onnx", {}), **res.get("layouts", {})}.items():
        rows.append((key.replace("_", " "), f"{value:.3f} s" if isinstance(value, float) else str(value)))
    lines = ["| measurement | result |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--model", default="lite", help="model for the accuracy rows (lite, paper or a checkpoint)")
    p.add_argument("--runs", type=int, default=7, help="timed runs of the lite model (after one warm-up)")
    p.add_argument("--paper-runs", type=int, default=2, help="timed runs of the paper model (no warm-up)")
    p.add_argument("--skip-paper", action="store_true")
    p.add_argument("--skip-4k", action="store_true")
    p.add_argument("--compile", action="store_true", help="also time torch.compile of the lite net (slow to compile)")
    p.add_argument("--onnx", action="store_true", help="also time ONNX Runtime (needs the onnx package)")
    p.add_argument("--layouts", action="store_true", help="also time the default memory layout vs channels_last")
    p.add_argument("--json", help="write all results to this JSON file")
    p.add_argument("--pause-pid-file", help="SIGSTOP this pid while timing, SIGCONT after (always)")
    p.add_argument("--child", nargs=4, metavar=("MODEL", "H", "W", "DEVICE"),
                   help="only measure time and peak RSS of one H x W frame in this process (used for 4K; try 4320 7680)")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", message="bundled 'lite' weights")
    if args.child:
        model, h, w, device = args.child
        peak_rss_child(model, int(h), int(w), device)
        return 0
    res = run(args)
    print(markdown(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
