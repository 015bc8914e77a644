import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_gldeblur import models, synthesis
from napari_gldeblur.cli import main
from napari_gldeblur.evaluation import psnr
from napari_gldeblur.network import DBAFNet, NetConfig
from napari_gldeblur.training import (
    TrainConfig,
    _Wrapped,
    autocast_dtype,
    charbonnier,
    distributed,
    online_data,
    phases_for,
    psnr_distance,
    sampler_workers,
    train,
)

TINY = NetConfig(width=4, blocks=1)


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(0)
    src = [synthesis.procedural_image(rng, 128) for _ in range(2)]
    return list(synthesis.iter_pairs("mixed", src, 6, 48, seed=0))


@pytest.fixture()
def tiny_ckpt(tmp_path):
    torch.manual_seed(0)
    net = DBAFNet(TINY)
    return models.write_checkpoint(tmp_path / "tiny.pt", {"config": TINY.as_dict(), "model": net.state_dict()})


@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory, pairs):
    d = tmp_path_factory.mktemp("pairs")
    synthesis.write_pairs(d, iter(pairs))
    return d


def cfg(tmp_path, model, **kw):
    base = dict(model=str(model), steps=4, batch=2, patch=32, val_every=2, val_size=48, out=str(tmp_path / "out.pt"),
                precision="fp32")
    return TrainConfig(**(base | kw))


def test_a_few_steps_lower_the_loss(tmp_path, tiny_ckpt, pairs):
    c = cfg(tmp_path, tiny_ckpt, phase="joint", steps=40, lr=3e-3, val_fraction=0.0, batch=4)
    losses = [p.loss for p in train(c, pairs=pairs)]
    assert losses[-1] < 0.7 * losses[0], (losses[0], losses[-1])


def test_bf16_autocast_training_lowers_the_loss_and_keeps_fp32_weights(tmp_path, tiny_ckpt, pairs):
    c = cfg(tmp_path, tiny_ckpt, phase="joint", steps=40, lr=3e-3, val_fraction=0.0, batch=4, precision="bf16")
    progress = list(train(c, pairs=pairs))
    losses = [p.loss for p in progress]
    assert losses[-1] < 0.7 * losses[0], (losses[0], losses[-1])
    assert {p.precision for p in progress} == {"bf16"}
    state = models.read_checkpoint(tmp_path / "out.pt")["model"]
    assert all(v.dtype == torch.float32 for v in state.values())


def test_psnr_loss_is_minus_the_mean_per_image_psnr():
    gen = torch.Generator().manual_seed(0)
    gt = torch.rand(3, 3, 16, 16, generator=gen)
    out = (gt + torch.randn(3, 3, 16, 16, generator=gen) * torch.tensor([0.05, 0.1, 0.2]).view(3, 1, 1, 1)).clamp(0, 1)
    want = -np.mean([psnr(o.permute(1, 2, 0).numpy(), g.permute(1, 2, 0).numpy()) for o, g in zip(out, gt)])
    assert float(psnr_distance(out, gt)) == pytest.approx(want, abs=0.05)  # eps adds < 0.05 dB here
    assert float(psnr_distance(gt, gt)) == pytest.approx(-50.0)  # capped at 50 dB


def test_a_lower_psnr_cap_moves_the_pull_from_nearly_sharp_to_blurred_images():
    gt = torch.zeros(2, 3, 8, 8)
    out = gt.clone()
    out[0] += 0.003  # nearly sharp: 50.5 dB
    out[1] += 0.1  # blurred: 20 dB

    def pulls(cap: float) -> torch.Tensor:
        o = out.clone().requires_grad_()
        psnr_distance(o, gt, eps=10 ** (-cap / 10)).backward()
        return o.grad.abs().sum(dim=(1, 2, 3))

    near, blurred = pulls(50.0)
    assert near > 10 * blurred  # the default cap: the nearly sharp image pulls 16x harder
    near, blurred = pulls(30.0)
    assert blurred > 2 * near


def test_the_psnr_cap_reaches_the_training_loss_and_is_checked(tmp_path, tiny_ckpt, pairs):
    net = DBAFNet(TINY)
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        y = net(x).image
        capped, default = _Wrapped(net, "joint", "psnr", psnr_cap=30.0)(x, y), _Wrapped(net, "joint", "psnr")(x, y)
    assert float(capped) == pytest.approx(-30.0, abs=1e-3)
    assert float(default) == pytest.approx(-50.0, abs=1e-3)
    with pytest.raises(ValueError, match="psnr_cap"):
        list(train(cfg(tmp_path, tiny_ckpt, phase="joint", loss="psnr", psnr_cap=3.0), pairs=pairs, resume=False))


def test_charbonnier_is_a_smooth_l1():
    gt = torch.zeros(2, 3, 8, 8)
    assert float(charbonnier(gt, gt)) == pytest.approx(1e-3)  # eps at zero error: smooth, not |x|'s kink
    assert float(charbonnier(gt + 0.5, gt)) == pytest.approx(0.5, abs=1e-5)


def test_training_with_psnr_loss(tmp_path, tiny_ckpt, pairs):
    c = cfg(tmp_path, tiny_ckpt, phase="joint", steps=40, lr=3e-3, val_fraction=0.0, batch=4, loss="psnr")
    losses = [p.loss for p in train(c, pairs=pairs)]
    assert losses[-1] < losses[0] - 1.0, (losses[0], losses[-1])  # at least 1 dB better
    with pytest.raises(ValueError, match="unknown loss"):
        list(train(cfg(tmp_path, tiny_ckpt, phase="joint", loss="l7"), pairs=pairs, resume=False))


def test_training_with_l1_loss(tmp_path, tiny_ckpt, pairs):
    c = cfg(tmp_path, tiny_ckpt, phase="joint", steps=40, lr=3e-3, val_fraction=0.0, batch=4, loss="l1")
    losses = [p.loss for p in train(c, pairs=pairs)]
    assert losses[-1] < 0.8 * losses[0], (losses[0], losses[-1])


def test_training_precision_choice():
    net = DBAFNet(TINY)
    assert autocast_dtype(net, "cpu", "fp32") is None
    assert autocast_dtype(net, "cpu", "bf16") is torch.bfloat16
    assert autocast_dtype(net, "cuda", "auto") is torch.bfloat16
    assert autocast_dtype(net, "cpu", "auto") in (None, torch.bfloat16)  # measured on this CPU
    with pytest.raises(ValueError, match="precision"):
        autocast_dtype(net, "cpu", "fp8")


def test_sampler_workers_only_by_default_on_cuda():
    assert sampler_workers(-1, "cpu") == 0
    assert sampler_workers(3, "cpu") == 3
    assert 0 <= sampler_workers(-1, "cuda") <= 6


def test_training_with_batch_worker_processes(tmp_path, tiny_ckpt, pairs):
    progress = list(train(cfg(tmp_path, tiny_ckpt, phase="joint", steps=3, workers=2), pairs=pairs))
    assert [p.step for p in progress] == [1, 2, 3]
    assert models.read_checkpoint(tmp_path / "out.pt")["train_config"]["workers"] == 2


def test_more_processes_than_gpus_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="2 processes per machine but it has 1 GPU"):
        distributed("cuda")


@pytest.mark.cuda
def test_cuda_training_lowers_the_loss_and_saves_cpu_loadable_weights(tmp_path, tiny_ckpt, pairs):
    c = cfg(tmp_path, tiny_ckpt, phase="joint", steps=40, lr=3e-3, val_fraction=0.0, batch=4, device="cuda",
            precision="auto")
    progress = list(train(c, pairs=pairs))
    assert {p.precision for p in progress} == {"bf16"}  # autocast on CUDA
    assert progress[-1].loss < 0.7 * progress[0].loss, (progress[0].loss, progress[-1].loss)
    ck = torch.load(tmp_path / "out.pt", weights_only=True, map_location="cpu")
    assert all(v.device.type == "cpu" and v.dtype == torch.float32 for v in ck["model"].values())
    models.model_from_checkpoint(models.read_checkpoint(tmp_path / "out.pt"), "out.pt")  # loads without CUDA


@pytest.mark.cuda
def test_cuda_and_cpu_training_steps_agree(tmp_path, tiny_ckpt, pairs):
    """The same fp32 steps from the same weights on the same batches: the losses differ only by rounding
    (CUDA convolutions may use TF32)."""
    losses = {}
    for device in ("cpu", "cuda"):
        c = cfg(tmp_path, tiny_ckpt, phase="joint", steps=5, val_fraction=0.0, device=device, workers=0,
                out=str(tmp_path / f"{device}.pt"))
        losses[device] = [float(p.loss) for p in train(c, pairs=pairs)]
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=1e-2)


def test_joint_phase_leaves_global_branch_bit_identical(tmp_path, tiny_ckpt, pairs):
    before = models.load_model(tiny_ckpt).global_branch.state_dict()
    list(train(cfg(tmp_path, tiny_ckpt, phase="joint"), pairs=pairs))
    after = models.load_model(tmp_path / "out.pt")
    for k, v in after.global_branch.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not torch.equal(after.attention.mask[0].weight, models.load_model(tiny_ckpt).attention.mask[0].weight)


def test_branch_phases_train_only_their_branch(tmp_path, tiny_ckpt, pairs):
    start = models.load_model(tiny_ckpt)
    list(train(cfg(tmp_path, tiny_ckpt, phase="global"), pairs=pairs))
    after = models.load_model(tmp_path / "out.pt")
    assert not torch.equal(after.global_branch.head[0].weight, start.global_branch.head[0].weight)
    assert torch.equal(after.local_branch.head[0].weight, start.local_branch.head[0].weight)


def test_end2end_trains_the_global_branch_and_validates_on_joints_pairs(tmp_path, tiny_ckpt, pairs):
    start = models.load_model(tiny_ckpt)
    list(train(cfg(tmp_path, tiny_ckpt, phase="end2end"), pairs=pairs))
    after = models.load_model(tmp_path / "out.pt")
    for branch in ("global_branch", "local_branch"):
        assert not torch.equal(getattr(after, branch).head[0].weight, getattr(start, branch).head[0].weight), branch
    c = TrainConfig(dead_leaves=1.0, skimage_content=False, val_count=2, val_size=32, patch=32)
    src = [synthesis.procedural_image(np.random.default_rng(1), 96)]
    joint, end2end = (online_data(c, phase, src, seed=0)[1] for phase in ("joint", "end2end"))
    assert all(np.array_equal(a, b) for pj, pe in zip(joint, end2end) for a, b in zip(pj, pe))


def test_the_kernel_mix_of_a_recipe_reaches_the_online_stream():
    src = [synthesis.procedural_image(np.random.default_rng(1), 96)]
    c = TrainConfig(dead_leaves=0.0, skimage_content=False, patch=32, kernel_mix={"identity": 1.0})
    stream, _ = online_data(c, "global", src, seed=0, with_val=False)
    rng = np.random.default_rng(0)
    assert all(np.array_equal(*stream.pair(rng)) for _ in range(4))  # identity pairs keep their grain: exact
    default, _ = online_data(dataclasses.replace(c, kernel_mix=None), "global", src, seed=0, with_val=False)
    assert not all(np.array_equal(*default.pair(rng)) for _ in range(4))  # degradations.UNIFORM_MIX blurs


def test_phases_per_variant(tmp_path):
    assert phases_for(TrainConfig(phase="all", model="scratch:lite"), "DBAF") == ["global", "local", "joint"]
    assert phases_for(TrainConfig(phase="all"), "LB") == ["end2end"]
    assert phases_for(TrainConfig(phase=None, model="lite"), "DBAF") == ["joint"]  # fine-tuning default
    with pytest.raises(ValueError, match="no global branch"):
        phases_for(TrainConfig(phase="global"), "LB")


def test_stop_then_resume_continues_from_saved_step(tmp_path, tiny_ckpt, pairs):
    c = cfg(tmp_path, tiny_ckpt, phase="joint", steps=6)
    seen = []
    for p in train(c, stop=lambda: len(seen) >= 2, pairs=pairs):
        seen.append(p.step)
    assert seen == [1, 2, 3]  # the stop request seen after step 2 ends the run after the step in flight
    saved = models.read_checkpoint(tmp_path / "out.pt")
    assert saved["step"] == 3 and saved["optimizer"] is not None
    resumed = list(train(c, pairs=pairs))
    assert [p.step for p in resumed] == [4, 5, 6]
    straight = list(train(cfg(tmp_path, tiny_ckpt, phase="joint", steps=6, out=str(tmp_path / "b.pt")), pairs=pairs))
    assert [p.lr for p in resumed] == pytest.approx([p.lr for p in straight[3:]])  # the schedule resumes too


def test_checkpoint_is_self_describing_and_safe(tmp_path, tiny_ckpt, pairs):
    list(train(cfg(tmp_path, tiny_ckpt, phase="joint"), pairs=pairs))
    ck = torch.load(tmp_path / "out.pt", weights_only=True)  # must not need arbitrary pickles
    assert ck["config"] == TINY.as_dict() and ck["phase"] == "joint" and ck["step"] == 4
    assert "val_psnr" in ck["metrics"]["joint"]


def test_training_runs_channels_last_and_saves_contiguous_weights(tmp_path, tiny_ckpt, pairs, monkeypatch):
    seen = []
    real = _Wrapped.forward

    def spy(self, x, y):
        weight = next(p for p in self.net.parameters() if p.dim() == 4)
        seen.append(all(t.is_contiguous(memory_format=torch.channels_last) for t in (x, y, weight)))
        return real(self, x, y)

    monkeypatch.setattr(_Wrapped, "forward", spy)
    list(train(cfg(tmp_path, tiny_ckpt, phase="joint", ema=0.9), pairs=pairs))
    assert seen and all(seen)  # the layout inference runs in, and faster on a CPU
    ck = models.read_checkpoint(tmp_path / "out.pt")
    for name in ("model", "train_weights"):  # files stay in the default layout, whatever training ran in
        assert all(v.is_contiguous() for v in ck[name].values()), name


def test_a_fine_tune_keeps_the_starting_models_auto_strength_gate(tmp_path, tiny_ckpt, pairs):
    start = tmp_path / "gated.pt"
    models.write_checkpoint(start, models.read_checkpoint(tiny_ckpt) | {"auto_strength": [0.25, 0.5],
                                                                         "auto_strength_measure": "smoothed change / detail"})
    list(train(cfg(tmp_path, start, phase="joint", deepen=[1, 1, 2]), pairs=pairs))
    assert models.read_checkpoint(tmp_path / "out.pt")["auto_strength"] == [0.25, 0.5]
    assert models.load_model(tmp_path / "out.pt").auto_strength == (0.25, 0.5)
    assert models.load_model(tmp_path / "out.pt").auto_strength_measure == "smoothed change / detail"
    list(train(cfg(tmp_path, tiny_ckpt, phase="joint", out=str(tmp_path / "plain.pt")), pairs=pairs))
    assert "auto_strength" not in models.read_checkpoint(tmp_path / "plain.pt")


def test_cli_train_all_phases(tmp_path, tiny_ckpt, pair_dir, capsys):
    out = tmp_path / "cli.pt"
    rc = main(["train", "--data", str(pair_dir), "--global-data", str(pair_dir), "--model", str(tiny_ckpt),
               "--phase", "all", "--steps", "2", "--batch", "2", "--patch", "32", "--val-every", "1", "-o", str(out)])
    assert rc == 0
    ck = models.read_checkpoint(out)
    assert ck["phases"] == ["global", "local", "joint"] and ck["phase"] == "joint"


@pytest.mark.parametrize("args, message", [
    (["--data", "NOPE"], "data folder not found"),
    (["--phase", "global"], "needs --global-data"),
    (["--loss", "psnr", "--psnr-cap", "200"], "psnr_cap is a PSNR in dB"),
])
def test_cli_bad_data_is_one_line_error(tmp_path, tiny_ckpt, pair_dir, capsys, args, message):
    args = [a.replace("NOPE", str(tmp_path / "nope")) for a in args]
    if "--data" not in args:
        args += ["--data", str(pair_dir)]
    rc = main(["train", *args, "--model", str(tiny_ckpt), "--steps", "1", "-o", str(tmp_path / "x.pt")])
    err = capsys.readouterr().err
    assert rc == 1 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_bad_checkpoint_is_one_line_error(tmp_path, pair_dir, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    rc = main(["train", "--data", str(pair_dir), "--model", str(bad), "--steps", "1", "-o", str(tmp_path / "x.pt")])
    assert rc == 1 and "is not a readable PyTorch checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path, tiny_ckpt, pair_dir):
    out = tmp_path / "ddp.pt"
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517",
           "--module", "napari_gldeblur.cli", "train", "--data", str(pair_dir), "--model", str(tiny_ckpt),
           "--phase", "joint", "--steps", "3", "--batch", "2", "--patch", "32", "--val-every", "3", "-o", str(out),
           "--device", "cpu"]  # gloo on the CPU, also where GPUs are present
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    ck = models.read_checkpoint(out)
    assert ck["step"] == 3 and ck["phase"] == "joint"


# --- recipes, EMA, the online stream, bad settings ---------------------------------------------------
from napari_gldeblur.training import EMA, NonFiniteLoss, check_config, load_recipe  # noqa: E402


def test_the_bundled_recipe_loads_into_a_train_config():
    c = load_recipe("recipes/bundled.toml", batch=64, device="cuda")
    assert c.online and c.ema > 0 and c.phase == ["global", "joint"]
    assert c.batch == 64 and c.device == "cuda"  # overrides win
    assert set(c.steps) == set(c.phase) == set(c.lr)


RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.mark.parametrize("recipe", sorted(str(p.relative_to(RECIPES)) for p in RECIPES.rglob("*.toml")))
def test_every_recipe_is_a_valid_config(recipe):
    check_config(load_recipe(RECIPES / recipe))


def test_a_recipe_with_an_unknown_setting_is_refused(tmp_path):
    (tmp_path / "r.toml").write_text('model = "lite"\nbatchsize = 4\n')
    with pytest.raises(ValueError, match="unknown setting.*batchsize"):
        load_recipe(tmp_path / "r.toml")


@pytest.mark.parametrize("field,value,message", [
    ("steps", 0, "--steps must be > 0"), ("steps", -3, "--steps must be > 0"), ("batch", 0, "--batch must be"),
    ("patch", 0, "--patch must be"), ("val_every", 0, "--val-every must be"),
    ("checkpoint_every", 0, "--checkpoint-every must be"), ("lr", float("nan"), "--lr must be > 0"),
    ("steps", {"joint": 0}, "for joint"), ("shapes", 0.9, "together at most 1"), ("dead_leaves", -0.1, "shares"),
    ("dynamic_share", 1.5, "dynamic_share"), ("soft", 1.2, "soft"), ("shallow_focus", -0.2, "shallow_focus"),
    ("kernel_mix", {"wobble": 1.0}, "unknown: wobble"),
    ("kernel_mix", {"shake": -1.0, "mild": 1.0}, "kernel_mix"), ("kernel_mix", {"shake": 0}, "not all 0"),
])
def test_settings_that_cannot_train_are_refused_up_front(tmp_path, field, value, message):
    with pytest.raises(ValueError, match=message):
        check_config(TrainConfig(out=str(tmp_path / "m.pt"), **{field: value}))


def test_an_output_folder_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="is a folder"):
        check_config(TrainConfig(out=str(tmp_path)))


def test_ema_follows_the_weights_slowly():
    net = torch.nn.Linear(2, 2)
    ema = EMA(net, 0.9)
    with torch.no_grad():
        net.weight.add_(1.0)
    for _ in range(3):
        ema.update(net)
    moved = (ema.shadow["weight"] - (net.weight.detach() - 1)).mean()
    assert 0.3 < float(moved) < 1.0  # part of the way, not all of it


def test_online_training_runs_resumes_and_saves_the_ema(tmp_path, tiny_ckpt):
    c = cfg(tmp_path, tiny_ckpt, phase=["global", "joint"], steps={"global": 2, "joint": 3}, online=True,
            skimage_content=False, photos=[], dead_leaves=1.0, ema=0.9, val_count=2, val_size=32,
            checkpoint_every=1)
    progress = list(train(c))
    assert [(p.phase, p.step) for p in progress] == [("global", 1), ("global", 2), ("joint", 1), ("joint", 2),
                                                       ("joint", 3)]
    ckpt = models.read_checkpoint(tmp_path / "out.pt")
    assert ckpt["ema"]["updates"] == 5 and "train_weights" in ckpt
    assert not all(torch.equal(ckpt["model"][k], ckpt["train_weights"][k]) for k in ckpt["model"])
    c.steps = {"global": 2, "joint": 5}
    assert [p.step for p in train(c)] == [4, 5]  # resumed in phase joint
    assert models.read_checkpoint(tmp_path / "out.pt")["ema"]["updates"] == 7


def test_a_diverging_run_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path, tiny_ckpt, pairs):
    c = cfg(tmp_path, tiny_ckpt, phase="joint", steps=3, val_fraction=0.0, checkpoint_every=1)
    list(train(c, pairs=pairs))
    good = models.read_checkpoint(tmp_path / "out.pt")
    c.steps, c.lr = 30, 1e12  # resumes from step 3 at this run's learning rate
    with pytest.raises(NonFiniteLoss, match="loss became .* keeps its last good step"):
        list(train(c, pairs=pairs))
    kept = models.read_checkpoint(tmp_path / "out.pt")
    assert all(torch.isfinite(v).all() for v in kept["model"].values() if v.dtype.is_floating_point)
    assert kept["step"] >= good["step"]


def test_resuming_a_different_run_is_refused(tmp_path, tiny_ckpt, pairs):
    c = cfg(tmp_path, tiny_ckpt, phase="joint", steps=2, val_fraction=0.0)
    list(train(c, pairs=pairs))
    c.phase = "global"
    with pytest.raises(ValueError, match="holds a run with phase 'joint'"):
        list(train(c, pairs=pairs))


def test_non_finite_weights_are_refused_on_load(tmp_path, tiny_ckpt):
    ckpt = models.read_checkpoint(tiny_ckpt)
    name = next(iter(ckpt["model"]))
    ckpt["model"][name] = torch.full_like(ckpt["model"][name], float("nan"))
    models.write_checkpoint(tmp_path / "nan.pt", ckpt)
    with pytest.raises(models.CheckpointError, match="non-finite weights"):
        models.load_model(tmp_path / "nan.pt")


def test_cli_fine_tuning_takes_the_widgets_defaults_and_scratch_runs_do_not(tmp_path):
    """``gldeblur train --model lite`` (or a checkpoint) gets finetune.FINE_TUNE, as the Fine-tune widget does;
    given options win; training from scratch keeps TrainConfig's defaults."""
    from napari_gldeblur.cli import build_parser, train_config
    from napari_gldeblur.finetune import FINE_TUNE
    from napari_gldeblur.training import TrainConfig

    def config(*argv):
        return train_config(build_parser().parse_args(["train", "--data", str(tmp_path), "-o", str(tmp_path / "x.pt"), *argv]))

    tuned = config("--model", "lite")
    assert all(getattr(tuned, k) == v for k, v in FINE_TUNE.items())
    assert config("--model", "lite", "--lr", "3e-4", "--reblur", "0").lr == 3e-4
    assert config("--model", "lite", "--reblur", "0").reblur == 0
    scratch = config("--model", "scratch:lite")
    assert (scratch.lr, scratch.reblur, scratch.loss) == (TrainConfig.lr, 0.0, TrainConfig.loss)
