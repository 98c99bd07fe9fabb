"""Encoder throughput per model, and weak / ceiling / vanilla transfer per weak-strong pairing.

    .venv/bin/python bench/encoders.py throughput [--rows 256] [--models a,b]
    .venv/bin/python bench/encoders.py pairings [--sizes 2000,3000,1300] [--models a,b] [--home D]

``throughput``: load time and encode speed (texts/s, rows/s) of each model on a fixed sample of
real rows of each default task (a pair is two texts), with the ratio to minilm-l6 measured in the
same run. ``pairings``: builds tweets and snli-pref with each strong model into a scratch
AARLAB_HOME (downloads shared through AARLAB_SOURCES_ROOT, default ~/.cache/aarlab/sources;
converted models in the usual AARLAB_HOME/models) and prints, over 5 seeds, the TF-IDF weak
teacher's test accuracy, the ceiling with a linear and an MLP head trained on gold
train_unlabel, and vanilla transfer (the MLP head trained on the weak soft labels) with its PGR.
The machine may be shared: the load average is printed with each table.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from aarlab.config import Settings, get_settings
from aarlab.tasks.build import BuildOptions, build_task
from aarlab.tasks.features import row_texts
from aarlab.tasks.registry import Sizes, default_tasks, get_task
from aarlab.w2s.backends.registry import MODELS, load_encoder
from aarlab.w2s.heads import HeadConfig, one_hot, train_head
from aarlab.w2s.metrics import accuracy, estimate, pgr_estimate

BASELINE = "minilm-l6"
SEEDS = 5


def _load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def throughput(models: list[str], n_rows: int) -> None:
    settings = get_settings()
    torch.set_num_threads(settings.torch_threads)
    samples = {}
    for spec in default_tasks():
        rows, _ = spec.load(settings.sources_dir, 0)
        samples[spec.name] = (spec.format, random.Random(0).sample(rows, min(n_rows, len(rows))))
    results: dict[str, dict] = {}
    for name in models:
        t0 = time.perf_counter()
        enc = load_encoder(name, settings.sources_dir)
        load_s = time.perf_counter() - t0
        enc.encode(["warm up the kernels"] * 4)
        results[name] = {"load": load_s, "dim": enc.dim, "key": enc.key}
        for task, (fmt, rows) in samples.items():
            texts = row_texts(fmt, rows)
            t0 = time.perf_counter()
            enc.encode(texts)
            s = time.perf_counter() - t0
            results[name][task] = (len(texts) / s, len(rows) / s)
        del enc
    table = Table("model", "params", "dim", "load s", "task", "texts/s", "rows/s",
                  f"rows/s ÷ {BASELINE}",
                  title=f"encode throughput, {n_rows} real rows per task, "
                        f"{settings.torch_threads} threads ({_load()})")
    for name, r in results.items():
        for i, task in enumerate(samples):
            ratio = (f"{r[task][1] / results[BASELINE][task][1]:.2f}"
                     if BASELINE in results else "-")
            head = [name, MODELS[name].params, str(r["dim"]), f"{r['load']:.1f}"] if i == 0 \
                else ["", "", "", ""]
            table.add_row(*head, task, f"{r[task][0]:.1f}", f"{r[task][1]:.1f}", ratio)
    Console(width=160).print(table)


def pairing_row(kit, key, model: str) -> dict:
    """Weak, ceiling (linear and MLP) and vanilla transfer accuracies over SEEDS seeds."""
    x_u, x_t = kit.features("train_unlabel", model), kit.features("test", model)
    y_u = key.labels("train_unlabel", kit.ids("train_unlabel"))
    y_t = key.labels("test", kit.ids("test"))
    k = kit.n_classes
    out: dict[str, list[float]] = {"weak": [], "linear": [], "mlp": [], "transfer": []}
    for seed in range(SEEDS):
        out["weak"].append(accuracy(kit.weak_probs("test", seed).argmax(1), y_t))
        for kind in ("linear", "mlp"):
            head = train_head(x_u, one_hot(y_u, k), seed=seed, cfg=HeadConfig(kind=kind))
            out[kind].append(accuracy(head.predict_proba(x_t).argmax(1), y_t))
        head = train_head(x_u, kit.weak_probs("train_unlabel", seed), seed=seed,
                          cfg=HeadConfig(kind="mlp"))
        out["transfer"].append(accuracy(head.predict_proba(x_t).argmax(1), y_t))
    return {name: estimate(v) for name, v in out.items()} | {"raw": out}


def pairings(models: list[str], sizes: Sizes, home: Path | None, tasks: list[str]) -> None:
    home = home or Path(tempfile.mkdtemp(prefix="aarlab-pairings-"))
    sources = Path(os.environ.get("AARLAB_SOURCES_ROOT", Path.home() / ".cache/aarlab/sources"))
    settings = Settings(home=home, sources_root=sources)
    torch.set_num_threads(settings.torch_threads)
    table = Table("task", "strong", "tl/tu/test", "encode s", "weak", "ceiling linear",
                  "ceiling mlp", "gap mlp−weak", "vanilla transfer (mlp)", "PGR vanilla",
                  title=f"weak (TF-IDF) vs strong, {SEEDS} seeds, mean ± SE on test "
                        f"(home={home})")
    console = Console(width=200)
    # Model outer: the fast encoders' rows arrive first on a slow or busy machine.
    for model in models:
        for task in tasks:
            spec = get_task(task)
            t0 = time.perf_counter()
            kit, key = build_task(spec, settings, BuildOptions(sizes=sizes, strong_model=model,
                                                               weak_seeds=SEEDS))
            secs = time.perf_counter() - t0
            r = pairing_row(kit, key, model)
            sz = kit.manifest["sizes"]
            p = pgr_estimate(r["raw"]["transfer"], r["weak"], r["mlp"])
            table.add_row(task, model, f"{sz['train_label']}/{sz['train_unlabel']}/{sz['test']}",
                          f"{secs:.0f}", str(r["weak"]), str(r["linear"]), str(r["mlp"]),
                          f"{r['mlp'].mean - r['weak'].mean:+.3f}", str(r["transfer"]), str(p))
            console.print(f"{task} × {model}: weak {r['weak']}, linear {r['linear']}, "
                          f"mlp {r['mlp']}, transfer {r['transfer']} ({secs:.0f} s, {_load()})")
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["throughput", "pairings"])
    ap.add_argument("--models", default=None, help="comma-separated model names")
    ap.add_argument("--rows", type=int, default=256, help="rows per task (throughput)")
    ap.add_argument("--sizes", default="2000,3000,1300",
                    help="train_label,train_unlabel,test (pairings)")
    ap.add_argument("--tasks", default="tweets,snli-pref", help="tasks (pairings)")
    ap.add_argument("--home", type=Path, default=None, help="scratch AARLAB_HOME (pairings)")
    args = ap.parse_args()
    if args.what == "throughput":
        models = args.models.split(",") if args.models else list(MODELS)
        throughput(models, args.rows)
    else:
        models = (args.models or "minilm-l6,minilm-l3-onnx,mpnet").split(",")
        tl, tu, te = (int(x) for x in args.sizes.split(","))
        pairings(models, Sizes(tl, tu, te), args.home, args.tasks.split(","))


if __name__ == "__main__":
    main()
