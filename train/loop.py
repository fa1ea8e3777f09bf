"""``siamtrack train``: train SiamRPN++ on annotated sequences (CPU by default, a GPU when present).

Checkpoints are pysot-layout ``model.pth`` files (flat state_dict, pysot key names) beside the config
they belong to, so every other stage (export, tracking) reads them like a pysot release. The training
state (optimiser, step, random generators, loss history) is saved separately for ``--resume``.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runtime.errors import InputError, SiamTrackError

EPILOG = """\
examples:
  # the shipped default model: EfficientNet-Lite0 (ImageNet) + 2-level RPN, 400 generated sequences
  siamtrack train --config lite0 --data synth:400 --steps 1500 --out artifacts/train/lite0
  # your own sequences (folder + groundtruth.txt per sequence), resumed after an interruption
  siamtrack train --config lite0 --data folder:/data/myseqs --out runs/a --resume
  # the spatial-aware sampling ablation: the same run without search shift
  siamtrack train --config lite0 --data synth:400 --search-shift 0 --out artifacts/train/shift0
  # fine-tune on generated data where half the targets are attached to a larger body (issue 20)
  siamtrack train --config lite0 --data synth:200 --synth-attached 0.5 --init models/lite0/model.pth \
      --out artifacts/train/attached50
  # fine-tune with distractor negatives: 60 % of the negative pairs centred on a look-alike (issue 20)
  siamtrack train --config lite0 --data synth:200 --neg-distractor 0.6 --init models/lite0/model.pth \
      --out artifacts/train/negdistractor
"""


class TrainError(SiamTrackError):
    """Bad training input: data without pairs, a resume from another run, ..."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run (its hash guards --resume)."""

    config: str = "lite0"
    data: tuple[str, ...] = ("synth:400",)
    synth_frames: int = 40
    steps: int = 1500
    batch: int = 16
    warmup_steps: int = 100
    warmup_lr: float = 0.001
    base_lr: float = 0.01
    end_lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 1e-4
    grad_clip: float = 10.0
    unfreeze_at: int | None = None          # step at which the backbone starts training (0.1 x LR)
    backbone_lr_mult: float = 0.1
    search_shift: float = 64.0              # spatial-aware sampling (pysot DATASET.SEARCH.SHIFT)
    neg: float = 0.2
    seed: int = 0
    pretrained: bool = True
    init: str | None = None                 # pysot model.pth to start from (after the ImageNet backbone)
    # Added after the shipped run; left out of the digest while at their defaults, so a run started
    # before they existed still resumes (see ``digest``).
    search_scale: float = 0.18              # search-crop scale jitter per axis (pysot DATASET.SEARCH.SCALE)
    unfreeze_blocks: int | None = None      # with unfreeze_at: train only the last N backbone blocks
    synth_attached: float = 0.0             # share of synth:N sequences with an attached target (bench.synth)
    neg_distractor: float = 0.0             # share of negative pairs centred on a distractor (train.pairs)

    def digest(self) -> str:
        values = dataclasses.asdict(self)
        for name, default in LATE_FIELDS.items():
            if values[name] == default:
                del values[name]
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


LATE_FIELDS = {"search_scale": 0.18, "unfreeze_blocks": None, "synth_attached": 0.0, "neg_distractor": 0.0}


@dataclass
class TrainState:
    step: int = 0
    losses: list = field(default_factory=list)   # rows: step, total, cls, loc, lr
    seconds: float = 0.0


def load_sequences(specs, synth_frames: int, seed: int, synth_attached: float = 0.0):
    """``synth:N`` -> N generated TRAIN-split sequences (a ``synth_attached`` share of them with attached
    targets, ``bench.synth.SynthConfig.attached``); ``<format>:PATH`` -> bench.sequences readers."""
    from bench.sequences import read_dataset
    from bench.synth import TRAIN_SEEDS, SynthConfig, generate

    sequences = []
    for spec in specs:
        kind, _, arg = spec.partition(":")
        if kind == "synth":
            try:
                n = int(arg)
            except ValueError:
                raise TrainError(f"--data {spec}: expected synth:N with N a number of sequences") from None
            cfg = SynthConfig(frames=synth_frames, attached=synth_attached)
            # train-split seeds only: test sequences (bench.synth TEST_SEEDS) are never trained on
            start = TRAIN_SEEDS.start + 1000 * seed
            sequences += [generate(start + i, cfg) for i in _progress(range(n), "generating sequences")]
        else:
            if not arg:
                raise TrainError(f"--data {spec}: expected synth:N or FORMAT:PATH (folder, otb, got10k, lasot, ...)")
            loaded = read_dataset(kind, arg)
            for p in loaded.problems:
                print(f"train: skipping {p.name}: {p.message}", file=sys.stderr)
            sequences += loaded.sequences
    return sequences


def _progress(it, desc, **kw):
    from tqdm import tqdm

    return tqdm(it, desc=desc, leave=False, disable=None, **kw)   # None: no bar when not on a terminal


def build_training_model(cfg: TrainConfig):
    """The network for ``cfg.config`` with its backbone's ImageNet weights (when it has shipped ones)."""
    from export.config import resolve_config
    from export.model import build_model

    model_cfg = resolve_config(cfg.config)
    model = build_model(model_cfg)
    if cfg.pretrained and model_cfg.backbone.type == "efficientnet_lite0":
        from export.model.efficientnet_lite import lite0_checkpoint_path, load_imagenet_lite0

        load_imagenet_lite0(model.backbone, lite0_checkpoint_path())
    return model_cfg, model


def pair_config(cfg: TrainConfig, tracker):
    """The pair sampling and augmentation settings of a run (pysot's, with this run's overrides)."""
    from train.augment import SEARCH_AUG
    from train.pairs import PairConfig

    return PairConfig(neg=cfg.neg, tracker=tracker, neg_distractor=cfg.neg_distractor,
                      search_aug=dataclasses.replace(SEARCH_AUG, shift=cfg.search_shift, scale=cfg.search_scale))


def trainable_backbone_parameters(model, cfg: TrainConfig) -> list:
    """The backbone parameters that train once it is unfrozen: all of them, or with ``unfreeze_blocks``
    only those of its last N blocks (the stem and early blocks keep their ImageNet filters; fewer
    weights to move on a small generated training set, and a shorter backward pass on a CPU)."""
    if cfg.unfreeze_blocks is None:
        return list(model.backbone.parameters())
    blocks = getattr(model.backbone, "_blocks", None)
    if blocks is None or not 1 <= cfg.unfreeze_blocks <= len(blocks):
        have = "no numbered blocks" if blocks is None else f"{len(blocks)} blocks"
        top = len(blocks) if blocks is not None else 0
        raise TrainError(f"--unfreeze-blocks {cfg.unfreeze_blocks}: this backbone has {have}; give 1..{top}, "
                         "or leave it out to train the whole backbone")
    return [p for block in list(blocks)[-cfg.unfreeze_blocks:] for p in block.parameters()]


def _param_groups(model, cfg: TrainConfig, backbone_trainable: bool):
    head = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    groups = [{"params": head, "lr_mult": 1.0}]
    if backbone_trainable:
        groups.append({"params": trainable_backbone_parameters(model, cfg), "lr_mult": cfg.backbone_lr_mult})
    return groups


def _set_backbone_trainable(model, cfg: TrainConfig, trainable: bool) -> None:
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    if trainable:
        for p in trainable_backbone_parameters(model, cfg):
            p.requires_grad_(True)


def _make_optimizer(torch, model, cfg: TrainConfig, backbone_trainable: bool):
    return torch.optim.SGD(_param_groups(model, cfg, backbone_trainable), lr=cfg.base_lr,
                           momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def train(cfg: TrainConfig, out_dir: Path, resume: bool = False, log_every: int = 10,
          sequences=None, quiet: bool = False, checkpoint_every: int = 100,
          stop_after: int | None = None) -> TrainState:
    """Run (or continue) training; writes ``out_dir/model.pth``, ``config.yaml``, ``train_state.pt``,
    ``losses.json`` and ``loss.png`` every ``checkpoint_every`` steps and at the end. ``stop_after``
    ends the run early (with a checkpoint) at that step, as an interruption would. Returns the state."""
    import torch

    from export.checkpoint import save_checkpoint
    from train.loss import siamrpn_loss
    from train.pairs import PairSampler
    from train.schedule import Schedule

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model_cfg, model = build_training_model(cfg)
    if cfg.init:
        from export.checkpoint import load_checkpoint

        load_checkpoint(model, cfg.init, model_cfg)
    if sequences is None:
        sequences = load_sequences(cfg.data, cfg.synth_frames, cfg.seed, cfg.synth_attached)
    sampler = PairSampler(sequences, pair_config(cfg, model_cfg.tracker))
    schedule = Schedule(cfg.steps, cfg.warmup_steps, cfg.warmup_lr, cfg.base_lr, cfg.end_lr)
    state = TrainState()
    backbone_trainable = cfg.unfreeze_at is not None and cfg.unfreeze_at <= 0
    state_path = out_dir / "train_state.pt"
    if resume and state_path.exists():
        saved = load_train_state(torch, state_path)
        if saved["digest"] != cfg.digest():
            raise TrainError(f"{state_path}: this run was made with other settings ({saved['config']}); "
                             "resume with the same options, or choose a new --out folder")
        model.load_state_dict(saved["model"])
        state = TrainState(**saved["state"])
        rng.bit_generator.state = saved["rng"]
        torch.set_rng_state(saved["torch_rng"])
        backbone_trainable = cfg.unfreeze_at is not None and state.step >= cfg.unfreeze_at
    _set_backbone_trainable(model, cfg, backbone_trainable)
    optimizer = _make_optimizer(torch, model, cfg, backbone_trainable)
    if resume and state_path.exists():
        optimizer.load_state_dict(saved["optimizer"])
    _write_config(model_cfg, out_dir)

    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=state.step, desc="train", disable=True if quiet else None, dynamic_ncols=True)
    start = time.perf_counter() - state.seconds
    while state.step < cfg.steps:
        if cfg.unfreeze_at is not None and state.step == cfg.unfreeze_at and not backbone_trainable:
            backbone_trainable = True
            _set_backbone_trainable(model, cfg, True)
            optimizer = _make_optimizer(torch, model, cfg, True)
        lr = schedule.lr(state.step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_mult"]
        model.train()
        model.backbone.eval()   # BN statistics stay ImageNet's / pysot's (its backbone BN runs in eval)
        batch = sampler.batch(rng, cfg.batch)
        t = {k: torch.from_numpy(v) for k, v in batch.items() if k not in ("box_xyxy", "negative")}
        cls, loc = model.track_from_kernels(t["search"], model.template_kernels(t["template"]))
        total, cls_loss, loc_loss = siamrpn_loss(cls, loc, t["label_cls"], t["label_loc"], t["label_loc_weight"])
        if not torch.isfinite(total):
            raise TrainError(f"step {state.step}: the loss became {total.item()}; lower --base-lr")
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        state.losses.append([state.step, total.item(), float(cls_loss.detach()), float(loc_loss.detach()), lr])
        state.step += 1
        state.seconds = time.perf_counter() - start
        bar.update(1)
        if state.step % log_every == 0 or state.step == cfg.steps:
            recent = np.array(state.losses[-log_every:])[:, 1:4].mean(axis=0)
            bar.set_postfix(loss=f"{recent[0]:.3f}", cls=f"{recent[1]:.3f}", loc=f"{recent[2]:.3f}", lr=f"{lr:.4f}")
        if state.step % checkpoint_every == 0 or state.step == cfg.steps or state.step == stop_after:
            _checkpoint(torch, model, optimizer, state, rng, cfg, out_dir, save_checkpoint)
        if state.step == stop_after:
            break
    bar.close()
    return state


def _write_config(model_cfg, out_dir: Path) -> None:
    import shutil

    from runtime.atomic import atomic_path

    if model_cfg.source:
        with atomic_path(out_dir / "config.yaml") as tmp:
            shutil.copyfile(model_cfg.source, tmp)


STATE_FORMAT = "siamtrack-train-state/2"


def _checkpoint(torch, model, optimizer, state, rng, cfg, out_dir: Path, save_checkpoint) -> None:
    from runtime.atomic import atomic_path, write_text

    save_checkpoint(model, out_dir / "model.pth")
    # Tensors and plain data only (the generator state and history as JSON text), so --resume can load
    # it with torch.load(weights_only=True), which never runs code from the file.
    payload = {"format": STATE_FORMAT, "digest": cfg.digest(), "config": json.dumps(dataclasses.asdict(cfg)),
               "model": model.state_dict(), "optimizer": optimizer.state_dict(),
               "state": json.dumps(dataclasses.asdict(state)), "rng": json.dumps(rng.bit_generator.state),
               "torch_rng": torch.get_rng_state()}
    with atomic_path(out_dir / "train_state.pt") as tmp:
        torch.save(payload, tmp)
    write_text(out_dir / "losses.json", json.dumps({"config": dataclasses.asdict(cfg), "seconds": state.seconds,
                                                    "columns": ["step", "total", "cls", "loc", "lr"],
                                                    "rows": state.losses}))
    plot_losses(state.losses, out_dir / "loss.png")


def load_train_state(torch, path: Path) -> dict:
    """``train_state.pt`` read with ``weights_only=True`` (tensors and plain data; a pickled object that
    would run code is refused before it is built). Returns digest, config, model, optimizer, state
    (dict), rng (numpy bit-generator state) and torch_rng."""
    import pickle

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TrainError(f"{path}: refused to resume from it: it is not a training state this project writes "
                         f"(tensors and plain data only; {first[:160]}). A file that holds other objects could "
                         "run code when loaded. Delete it to restart the run, or choose a new --out folder") from None
    if not isinstance(saved, dict) or not {"digest", "model", "optimizer", "state", "rng", "torch_rng"} <= set(saved):
        raise TrainError(f"{path}: not a training state written by `siamtrack train` (keys missing); delete it "
                         "to restart the run, or choose a new --out folder")
    if saved.get("format") == STATE_FORMAT:
        saved = dict(saved, config=json.loads(saved["config"]), state=json.loads(saved["state"]),
                     rng=json.loads(saved["rng"]))
    return saved


def plot_losses(rows, path: Path, window: int = 20) -> None:
    """Total, classification and regression loss against step (moving average over ``window`` steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = np.array(rows)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for col, name in ((1, "total"), (2, "cls (x1.0)"), (3, "loc (x1.2 in total)")):
        y = data[:, col]
        if len(y) >= window:
            y = np.convolve(y, np.ones(window) / window, mode="valid")
        ax.plot(data[len(data) - len(y):, 0], y, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(f"loss (moving average, {window} steps)")
    ax.set_title("SiamRPN++ training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    from runtime.atomic import atomic_path

    with atomic_path(path, suffix=".tmp.png") as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="siamtrack train", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=d.config, help="built-in config name or pysot config.yaml (default lite0)")
    p.add_argument("--data", action="append", help="synth:N or FORMAT:PATH (repeatable; default synth:400)")
    p.add_argument("--synth-frames", type=int, default=d.synth_frames, help="frames per generated sequence")
    p.add_argument("--synth-attached", type=float, default=d.synth_attached, metavar="F",
                   help="fraction (0..1) of the synth:N sequences whose target is a sub-region of a larger "
                        "pasted body (texture continues past the box on some sides, like a head on a body; "
                        "half of them blended in through a soft-edged ellipse). The box stays the "
                        "sub-region, so the regression cannot just find a pasted rectangle's edge. "
                        "Default 0: the classic pasted rectangles, byte-identical sequences")
    p.add_argument("--neg-distractor", type=float, default=d.neg_distractor, metavar="F",
                   help="fraction (0..1) of the negative pairs (pysot's 20%%) whose search crop is centred on a "
                        "distractor of the template's own sequence (an object cut from the same photograph, in "
                        "a nearby frame) instead of an unrelated target: DaSiamRPN's semantic negatives, to "
                        "score look-alikes low. Generated sequences only (they record distractor boxes). "
                        "Default 0: pysot's negatives and random stream")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--base-lr", type=float, default=d.base_lr)
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    p.add_argument("--unfreeze-at", type=int, help="step at which the backbone starts training (default: frozen)")
    p.add_argument("--search-shift", type=float, default=d.search_shift,
                   help="max search-crop shift in px (spatial-aware sampling; 0 = centred targets)")
    p.add_argument("--search-scale", type=float, default=d.search_scale,
                   help="search-crop scale jitter per axis, +-fraction (default 0.18, pysot's); larger values "
                        "teach the box regression to correct bigger size and aspect errors")
    p.add_argument("--end-lr", type=float, default=d.end_lr, help="learning rate at the last step (log decay)")
    p.add_argument("--unfreeze-blocks", type=int,
                   help="with --unfreeze-at: train only the backbone's last N blocks (default: all of it)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--no-pretrained", action="store_true", help="start the backbone from random weights")
    p.add_argument("--init", help="start from this pysot-layout model.pth (e.g. to fine-tune a trained run)")
    p.add_argument("--out", required=True, help="run folder (model.pth, config.yaml, loss.png, ...)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--stop-after", type=int, help="end (with a checkpoint) at this step, before --steps")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = TrainConfig(config=args.config, data=tuple(args.data or ("synth:400",)), synth_frames=args.synth_frames,
                      steps=args.steps, batch=args.batch, base_lr=args.base_lr, warmup_steps=args.warmup_steps,
                      unfreeze_at=args.unfreeze_at, search_shift=args.search_shift, seed=args.seed,
                      pretrained=not args.no_pretrained, init=args.init, search_scale=args.search_scale,
                      end_lr=args.end_lr, unfreeze_blocks=args.unfreeze_blocks, synth_attached=args.synth_attached,
                      neg_distractor=args.neg_distractor)
    if cfg.steps < 1 or cfg.batch < 1:
        raise InputError("--steps and --batch must be at least 1")
    if cfg.unfreeze_blocks is not None and cfg.unfreeze_at is None:
        raise InputError("--unfreeze-blocks needs --unfreeze-at (the step at which those blocks start training)")
    if not 0 <= cfg.synth_attached <= 1:
        raise InputError(f"--synth-attached {cfg.synth_attached}: give a fraction in [0, 1], e.g. 0.5")
    if not 0 <= cfg.neg_distractor <= 1:
        raise InputError(f"--neg-distractor {cfg.neg_distractor}: give a fraction in [0, 1], e.g. 0.6")
    if not 0 <= cfg.search_scale < 1:
        raise InputError(f"--search-scale {cfg.search_scale}: give a fraction in [0, 1), e.g. 0.18")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    state = train(cfg, Path(args.out), resume=args.resume, stop_after=args.stop_after)
    print(f"trained {state.step} steps in {state.seconds / 60:.1f} min; model -> {Path(args.out) / 'model.pth'}")
    return 0


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack train"))
