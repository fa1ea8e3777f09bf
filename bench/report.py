"""Tables (markdown), JSON and PNG plots for the accuracy and latency summaries.

``siamtrack report SUMMARY.json`` re-renders the table (and, for accuracy, the plots) of a summary that
``siamtrack accuracy`` or ``siamtrack latency`` wrote, e.g. after copying it off a Jetson.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from bench.metrics import NORM_PRECISION_THRESHOLDS, PRECISION_THRESHOLDS, SUCCESS_THRESHOLDS
from runtime import atomic
from runtime.errors import InputError


def json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_atomic(path: Path, text: str) -> None:
    atomic.write_text(path, text)   # temp file, fsync, rename, fsync the folder: survives a power cut


def markdown_table(headers: list[str], rows: list[list]) -> str:
    def cell(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        if isinstance(v, float):
            return f"{v:.3f}"
        return str(v)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) if text else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in text])


# ------------------------------------------------------------------ accuracy

_OPE_COLUMNS = [("AUC", "auc"), ("Prec@20px", "prec20"), ("NormPrec@0.20 (pysot)", "norm_prec_pysot"),
                ("ScaleErr", "scale_error"), ("AspectErr", "aspect_error"), ("Distractor", "distractor_fraction")]
_GOT_COLUMNS = [("AO", "ao"), ("SR0.50", "sr50"), ("SR0.75", "sr75")]
_LT_COLUMNS = [("LT-F", "lt_fscore"), ("LT-Pr", "lt_precision"), ("LT-Re", "lt_recall"),
               ("Redetect delay (fr)", "redetect_delay_mean")]
_VOT_COLUMNS = [("EAO", "eao"), ("Accuracy", "accuracy"), ("Robustness (fail/100 fr)", "robustness"),
                ("Lost", "lost")]


def accuracy_markdown(summary: dict) -> str:
    runs = summary["runs"]
    protocol = summary["protocol"]
    if protocol == "vot":
        columns = _VOT_COLUMNS
    else:
        columns = list(_OPE_COLUMNS)
        if any("ao" in r["overall"] for r in runs.values()):
            columns += _GOT_COLUMNS
        if any("lt_fscore" in r["overall"] for r in runs.values()):
            columns += _LT_COLUMNS
    headers = ["run"] + [c for c, _ in columns] + ["FPS (tracker)", "seqs", "problems"]
    rows = []
    for name, r in runs.items():
        label = name + (" (random weights)" if r["run"].get("random_weights") else "")
        rows.append([label] + [r["overall"].get(k) for _, k in columns]
                    + [r.get("tracker_fps"), r["overall"].get("sequences_scored", 0), len(r["problems"])])
    ds = summary.get("dataset", {})
    parts = [f"# Accuracy: {ds.get('format', '?')} ({ds.get('sequences', '?')} sequences), protocol {protocol}", "",
             markdown_table(headers, rows), ""]
    if protocol == "vot" and "eao_range" in summary:
        rng = summary["eao_range"]
        parts += [f"EAO: expected average overlap over sequence lengths {rng['low']}..{rng['high']} "
                  f"({rng['edition']} range), computed as pysot's eao_benchmark; '-' when every sequence is "
                  f"shorter than {rng['low']} frames. Accuracy/robustness as pysot's ar_benchmark.", ""]
    if protocol != "vot":
        parts += ["Scored as pysot's OPEBenchmark: success uses IoU > t (strict), precision distance <= t; "
                  "`NormPrec@0.20 (pysot)` is the normalised-precision curve at 0.20 (what pysot prints for "
                  "LaSOT); absent flags apply to LaSOT only.", "",
                  "Failure modes (bench.failure_modes, medians per sequence over frames 1..T-1, then the mean over "
                  "sequences; standard errors in summary.json `failure_modes_se`): `ScaleErr` |log(area_pred / "
                  "area_gt)|, `AspectErr` |log(aspect_pred / aspect_gt)| (log 2 = 0.69: twice the area or "
                  "aspect); `Distractor` the fraction of frames with IoU < 0.1 while the tracker's score is at or "
                  "above the lost threshold (0.3), '-' without per-frame scores.", ""]
        if any("lt_fscore" in r["overall"] for r in runs.values()):
            parts += ["Long-term measures (the sequences have frames without the target; bench.lt_metrics): `LT-F` "
                      "is the VOT long-term F-score, the best over confidence thresholds tau of 2 Pr Re / (Pr + Re), "
                      "where Pr(tau) is the mean overlap over frames whose score >= tau and Re(tau) their overlap summed "
                      "over the frames where the target is visible (a box on an absent frame overlaps 0); `LT-Pr` and "
                      "`LT-Re` at that tau. `Redetect delay` = mean frames from the target's reappearance until IoU > "
                      "0.5 again (re-detected ones; `reappearances` / `redetected` and the standard errors `lt_se` are "
                      "in summary.json).", ""]
    problems = [(name, p["sequence"], p["error"]) for name, r in runs.items() for p in r["problems"]]
    problems += [("(dataset)", p["sequence"], p["error"]) for p in ds.get("load_problems", [])]
    problems += [(e["run"], e["sequence"], e["error"]) for e in summary.get("run_errors", [])]
    if problems:
        parts += ["## Problems (these sequences were left out; the rest were scored)", ""]
        parts += [f"- {run} / {seq}: {err}" for run, seq, err in problems] + [""]
    return "\n".join(parts)


_LINESTYLES = ("-", "--", "-.", ":")


def run_styles(names: list[str]) -> dict[str, dict]:
    """One matplotlib style per run, fixed by the run's position in the summary (not by its score), so a
    run looks the same in success.png, precision.png and norm_precision.png. Line styles cycle with
    the colours so that runs with identical curves (e.g. two flavours) stay visible."""
    return {name: {"color": f"C{i % 10}", "linestyle": _LINESTYLES[i % len(_LINESTYLES)]}
            for i, name in enumerate(names)}


def plot_accuracy(summary: dict, out_dir: Path) -> list[Path]:
    """success.png, precision.png, norm_precision.png with every run's mean curve on the same axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {n: r for n, r in summary["runs"].items() if "curves" in r}
    if not runs:
        return []
    specs = [("success.png", "success", SUCCESS_THRESHOLDS, "overlap threshold (IoU > t)", "success rate",
              "Success plot", "AUC", "auc"),
             ("precision.png", "precision", PRECISION_THRESHOLDS, "location error threshold (px)", "precision",
              "Precision plot", "@20px", "prec20"),
             ("norm_precision.png", "norm_precision", NORM_PRECISION_THRESHOLDS,
              "normalised location error threshold", "normalised precision", "Normalised precision plot",
              "@0.20", "norm_prec_pysot")]
    styles = run_styles(list(runs))
    written = []
    for fname, key, x, xlabel, ylabel, title, tag, score_key in specs:
        fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
        # legend order follows this plot's score; colour and line style stay the run's own in every plot
        order = sorted(runs, key=lambda n: -(runs[n]["overall"].get(score_key) or 0))
        for name in order:
            r = runs[name]
            ax.plot(x, r["curves"][key], linewidth=2, **styles[name],
                    label=f"{name} [{tag} {r['overall'][score_key]:.3f}]")
        if key == "precision":
            ax.axvline(20, color="grey", linestyle=":", linewidth=1)
        ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(x[0], x[-1]), ylim=(0, 1.02),
               title=f"{title}: {summary.get('dataset', {}).get('format', '')} "
                     f"({summary.get('dataset', {}).get('sequences', '?')} seqs)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize=8)   # random-weight runs sit near 0, trained ones near 1
        fig.tight_layout()
        path = out_dir / fname
        with atomic.atomic_path(path, suffix=".tmp.png") as tmp:   # savefig infers the format from it
            fig.savefig(tmp)
        plt.close(fig)
        written.append(path)
    return written


def write_accuracy_report(summary: dict, out_dir: Path, plots: bool = True) -> list[Path]:
    """summary.json, summary.md and (``plots``) the PNGs; returns the PNG paths written."""
    write_atomic(out_dir / "summary.json", json.dumps(summary, indent=1, default=json_default))
    write_atomic(out_dir / "summary.md", accuracy_markdown(summary))
    return plot_accuracy(summary, out_dir) if plots else []


# ------------------------------------------------------------------ latency

LATENCY_STAGES = ("crop", "preprocess", "template", "search", "postprocess", "host", "host_replay", "track_e2e",
                  "search_lost")


def latency_markdown(result: dict) -> str:
    """One table: a row per run and stage with median/p90/p99 ms, FPS for the end-to-end step, peak RSS
    and the median ratio against the first run."""
    runs = result["runs"]
    first = next(iter(runs.values()), None)
    headers = ["run", "stage", "median ms", "p90 ms", "p99 ms", "CPU ms", "FPS", "x first run", "peak RSS MiB"]
    rows = []
    for name, r in runs.items():
        if r.get("error"):
            rows.append([name, "error", None, None, None, None, None, None, None])
            continue
        label = name + (" (random weights)" if r["run"].get("random_weights") else "")
        for stage in LATENCY_STAGES:
            s = r["stages"].get(stage)
            if not s:
                continue
            ref = (first or {}).get("stages", {}).get(stage)
            ratio = s["median_ms"] / ref["median_ms"] if ref and ref["median_ms"] > 0 else None
            rows.append([label if stage == LATENCY_STAGES[0] else "", stage, s["median_ms"], s["p90_ms"], s["p99_ms"],
                         s.get("cpu_median_ms"),
                         1000.0 / s["median_ms"] if stage == "track_e2e" and s["median_ms"] > 0 else None,
                         ratio, r.get("peak_rss_mib") if stage == LATENCY_STAGES[0] else None])
    env = result.get("environment", {})
    parts = [f"# Latency ({env.get('frame_wh', '?')} frames, {result.get('iterations', '?')} timed steps after "
             f"{result.get('warmup', '?')} warm-up, {env.get('threads', '?')} thread(s), {env.get('cpu', '')})", "",
             markdown_table(headers, rows), "",
             "`track_e2e` is one `tracker.track(frame)` call (crop + preprocess + search + postprocess); "
             "`host` is that call minus its backend search, per frame (all the tracker's CPU-side work); "
             "`host_replay` is `host` again over the same frames with the recorded network outputs played back, "
             "so no network runs on this CPU between frames (the host path of a GPU deployment; same boxes, "
             "bit for bit, else a note below); "
             "`template` is timed over repeated `init` calls. `x first run` = median / the first run's median "
             "(< 1 is faster). `CPU ms` = median process CPU time of the stage (all threads; unaffected by other load, unlike wall time). Peak RSS is the measuring subprocess's maximum resident set (model + runtime)."]
    kernels = [(n, r["int8_kernels"]) for n, r in runs.items() if r.get("int8_kernels")]
    if kernels:
        parts += [""] + [f"- {n}: {k}" for n, k in kernels]
    differ = [n for n, r in runs.items() if r.get("replay_identical") is False]
    if differ:
        parts += ["", "- replay gave other boxes than the recorded run (host_replay not comparable): " + ", ".join(differ)]
    errors = [(n, r["error"]) for n, r in runs.items() if r.get("error")]
    if errors:
        parts += ["", "## Errors", ""] + [f"- {n}: {e}" for n, e in errors]
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------ CLI

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="siamtrack report", description=__doc__.split("\n\n")[0],
                                epilog="example:\n  siamtrack report artifacts/acc-otb/summary.json --plots\n",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("summary", help="summary.json (accuracy) or latency.json")
    p.add_argument("--plots", action="store_true", help="re-draw the accuracy PNGs beside the summary")
    p.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    args = p.parse_args(argv)
    path = Path(args.summary)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read a summary JSON ({err}); pass the summary.json or latency.json "
                         "written by `siamtrack accuracy` / `siamtrack latency`") from None
    if args.json:
        print(json.dumps(data, indent=1))
    elif "protocol" in data:
        print(accuracy_markdown(data))
        if args.plots:
            for f in plot_accuracy(data, path.parent):
                print(f"wrote {f}")
    elif "stages" in json.dumps(data)[:100000] and "runs" in data:
        print(latency_markdown(data))
    else:
        raise InputError(f"{path}: neither an accuracy summary nor a latency result")
    return 0


if __name__ == "__main__":
    from runtime.errors import run_main

    raise SystemExit(run_main(main, "siamtrack report"))
