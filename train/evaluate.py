"""``siamtrack train-eval``: is a trained model any good, and did spatial-aware sampling matter?

Two measurements, both on generated TEST-split sequences (``bench.synth``: photographs never used in
training):

1. Success AUC (pysot OPE) of each model against two baselines measured in the same run: the same
   network untrained (ImageNet backbone, random neck and head: where training starts) and a static
   tracker whose box never moves.
2. Centre bias: for targets placed at known offsets (uniform in +-64 px) from the search-crop centre,
   the mean foreground response map and the distance between its peak and the true cell, by offset.
   A network trained without search shift answers "the centre" wherever the target is. A second AUC
   on fast sequences (targets far from the crop centre every frame) shows the cost in tracking.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.errors import InputError

EPILOG = """\
examples:
  siamtrack train-eval --model models/lite0 --json
  siamtrack train-eval --model shift64=artifacts/train/shift64 --model shift0=artifacts/train/shift0 \\
      --sequences 12 --out artifacts/ablation
"""

OFFSET_BINS_PX = (0, 16, 32, 48, 64)


@dataclass(frozen=True)
class _Result:
    box_xywh: np.ndarray
    score: float


class StaticTracker:
    """Baseline: reports the init box on every frame."""

    def init(self, frame, box_xywh):
        self._box = np.asarray(box_xywh, dtype=np.float64)

    def track(self, frame):
        return _Result(self._box, 0.0)


def test_sequences(n: int, fast: bool = False, frames: int = 60):
    """``n`` TEST-split generated sequences; ``fast`` ones move up to 14 px per frame (far from centre)."""
    from bench.synth import TEST_SEEDS, SynthConfig, generate

    cfg = SynthConfig(frames=frames, max_speed=14.0 if fast else SynthConfig.max_speed)
    offset = 500_000 if fast else 0
    return [generate(TEST_SEEDS.start + offset + i, cfg) for i in range(n)]


def success_auc(tracker_factory, sequences) -> tuple[float, list[float]]:
    """Mean success AUC over ``sequences`` (pysot OPE, axis-aligned init) and the per-sequence values."""
    from bench.accuracy import track_ope
    from bench.metrics import mean_ope, ope_scores

    scores = []
    for seq in sequences:
        boxes, _ = track_ope(tracker_factory(), seq)
        scores.append(ope_scores(seq.gt_xywh, boxes, seq.absent))
    return mean_ope(scores).auc, [s.auc for s in scores]


def response_bias(backend, sequences, samples: int, rng: np.random.Generator, max_shift: float = 64.0):
    """Mean foreground response (S, S) over targets shifted off the crop centre, and the peak error.

    Returns (mean_map (S, S) float64, offsets_px (M,) float64 = |shift| in crop pixels, errors_px (M,)
    float64 = distance from the response peak to the true target position, in crop pixels).
    """
    from runtime.crop import get_subwindow, to_blob
    from runtime.postprocess import foreground_scores

    cfg = backend.tracker_config
    s, a = cfg.score_size, cfg.anchor_num
    maps, offsets, errors = [], [], []
    for _ in range(samples):
        seq = sequences[int(rng.integers(len(sequences)))]
        ok = np.flatnonzero(~seq.absent & np.isfinite(seq.gt_xywh).all(axis=1))
        i = int(ok[rng.integers(len(ok))])
        frame = seq.frame(i)
        x, y, w, h = seq.gt_xywh[i]
        centre = np.array([x + w / 2, y + h / 2])
        avg = frame.mean(axis=(0, 1))
        context = cfg.context_amount * (w + h)
        s_z = np.sqrt((w + context) * (h + context))
        z = get_subwindow(frame, centre, cfg.exemplar_size, int(round(s_z)), avg)
        shift = rng.uniform(-max_shift, max_shift, size=2)              # crop pixels
        s_x = s_z * cfg.instance_size / cfg.exemplar_size
        crop_centre = centre - shift * s_x / cfg.instance_size          # target lands at centre + shift
        xc = get_subwindow(frame, crop_centre, cfg.instance_size, int(round(s_x)), avg)
        kernels = backend.run_template(to_blob(z[None]))
        cls, _ = backend.run_search(to_blob(xc[None]), kernels)
        score = foreground_scores(cls)[0].reshape(a, s, s).max(axis=0)    # (S, S)
        maps.append(score)
        peak = np.array(np.unravel_index(int(score.argmax()), score.shape))[::-1]   # (col, row)
        peak_px = (peak - s // 2) * cfg.stride
        offsets.append(float(np.hypot(*shift)))
        errors.append(float(np.hypot(*(peak_px - shift))))
    return np.mean(maps, axis=0), np.array(offsets), np.array(errors)


def error_by_offset(offsets: np.ndarray, errors: np.ndarray) -> dict[str, float]:
    """Mean peak error (px) per bin of target offset from the crop centre."""
    out = {}
    for lo, hi in zip(OFFSET_BINS_PX[:-1], OFFSET_BINS_PX[1:]):
        m = (offsets >= lo) & (offsets < hi)
        out[f"{lo}-{hi}px"] = float(errors[m].mean()) if m.any() else float("nan")
    m = offsets >= OFFSET_BINS_PX[-1]
    out[f">{OFFSET_BINS_PX[-1]}px"] = float(errors[m].mean()) if m.any() else float("nan")
    return out


def centre_mass(mean_map: np.ndarray, radius: int = 2) -> float:
    """Share of the mean response inside the central (2r+1)^2 cells, relative to a flat map's share."""
    s = mean_map.shape[0]
    c = s // 2
    inner = mean_map[c - radius:c + radius + 1, c - radius:c + radius + 1].sum() / mean_map.sum()
    return float(inner / ((2 * radius + 1) ** 2 / s ** 2))


def plot_bias(maps: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(maps), figsize=(3.6 * len(maps), 3.4), dpi=110, squeeze=False)
    for ax, (name, m) in zip(axes[0], maps.items()):
        im = ax.imshow(m, cmap="viridis", origin="upper")
        ax.set_title(f"{name}\ncentre mass x{centre_mass(m):.2f}", fontsize=9)
        ax.set_xticks([0, m.shape[1] // 2, m.shape[1] - 1])
        ax.set_yticks([0, m.shape[0] // 2, m.shape[0] - 1])
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle("mean foreground response, targets shifted uniformly by up to 64 px", fontsize=9)
    fig.tight_layout()
    from runtime.atomic import atomic_path

    with atomic_path(path, suffix=".tmp.png") as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def _model_arg(text: str) -> tuple[str, Path]:
    name, sep, folder = text.partition("=")
    path = Path(folder if sep else name)
    if not (path / "model.pth").is_file() or not (path / "config.yaml").is_file():
        raise InputError(f"--model {text}: expected a folder with model.pth and config.yaml (a training run)")
    return (name if sep else path.name), path


def build_parser() -> argparse.ArgumentParser:
    from runtime.cli_args import positive_int

    p = argparse.ArgumentParser(prog="siamtrack train-eval", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", required=True, help="[NAME=]FOLDER with model.pth + config.yaml")
    p.add_argument("--sequences", type=int, default=10, help="test sequences for AUC (and as many fast ones)")
    p.add_argument("--bias-samples", type=int, default=200, help="shifted-target samples for the centre bias")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=positive_int,
                   help="CPU threads of torch's intra-op pool (torch.set_num_threads, process-wide); "
                        "default: the library's")
    p.add_argument("--out", help="folder for results.json and centre_bias.png")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    models = [_model_arg(m) for m in args.model]
    import torch

    from runtime.backends.pyt import TorchBackend
    from runtime.tracker import SiamRPNTracker

    normal, fast = test_sequences(args.sequences), test_sequences(args.sequences, fast=True)
    results: dict = {"sequences": args.sequences, "frames": len(normal[0]), "models": {}}
    maps = {}
    first_cfg = models[0][1] / "config.yaml"
    for name, folder in models:
        backend = TorchBackend.from_checkpoint(str(folder / "config.yaml"), str(folder / "model.pth"),
                                               threads=args.threads)
        auc, per_seq = success_auc(lambda b=backend: SiamRPNTracker(b), normal)
        auc_fast, _ = success_auc(lambda b=backend: SiamRPNTracker(b), fast)
        mean_map, offsets, errors = response_bias(backend, normal, args.bias_samples, np.random.default_rng(args.seed))
        maps[name] = mean_map
        results["models"][name] = {"auc": auc, "auc_fast": auc_fast, "auc_per_sequence": per_seq,
                                   "centre_mass": centre_mass(mean_map),
                                   "peak_error_px_by_offset": error_by_offset(offsets, errors)}
    # baselines, measured in this run on the same sequences
    torch.manual_seed(args.seed)
    untrained = _untrained_backend(first_cfg, args.threads)
    results["models"]["untrained"] = {
        "auc": success_auc(lambda: SiamRPNTracker(untrained), normal)[0],
        "auc_fast": success_auc(lambda: SiamRPNTracker(untrained), fast)[0]}
    results["models"]["static"] = {"auc": success_auc(StaticTracker, normal)[0],
                                   "auc_fast": success_auc(StaticTracker, fast)[0]}
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        plot_bias(maps, out / "centre_bias.png")
        from runtime.atomic import write_text

        write_text(out / "results.json", json.dumps(results, indent=1))
    if args.json:
        print(json.dumps(results))
    else:
        print(f"success AUC on {args.sequences} held-out generated sequences ({results['frames']} frames), "
              "and on as many fast ones (target far from the crop centre):")
        print(f"{'model':<14} {'AUC':>6} {'AUC fast':>9} {'centre mass':>12}  peak error px by offset")
        for name, r in results["models"].items():
            cm = f"{r['centre_mass']:.2f}" if "centre_mass" in r else "-"
            err = "  ".join(f"{k}:{v:.1f}" for k, v in r.get("peak_error_px_by_offset", {}).items())
            print(f"{name:<14} {r['auc']:>6.3f} {r['auc_fast']:>9.3f} {cm:>12}  {err}")
    return 0


def _untrained_backend(config_path: Path, threads: int | None = None):
    """The model of ``config_path`` as training starts: ImageNet backbone, randomly initialised rest.
    threads: torch's intra-op threads (process-wide; None leaves them as they are)."""
    from export.config import load_config
    from export.model import build_model
    from runtime.backends.pyt import TorchBackend

    cfg = load_config(config_path)
    model = build_model(cfg)
    if cfg.backbone.type == "efficientnet_lite0":
        from export.model.efficientnet_lite import lite0_checkpoint_path, load_imagenet_lite0

        load_imagenet_lite0(model.backbone, lite0_checkpoint_path())
    return TorchBackend(cfg, model, threads=threads)


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack train-eval"))
