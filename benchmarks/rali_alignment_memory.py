"""Peak memory of one RALI contrastive-alignment step at the paper's scale (CLIP ViT-L/14-336).

One step is what the ``rali`` trainer runs per batch: the vision tower's
forward pass on 336x336 images, the InfoNCE loss against precomputed text
embeddings, the backward pass and an AdamW update (whose two moment buffers
are allocated on the first step). The model is the real architecture with
random weights, text tower included (it stays in memory, frozen, as in
training): memory does not depend on the weight values, and nothing is
downloaded.

Each (precision, checkpointing, batch) point runs in a fresh process so that
its peak is its own: on CPU the peak resident set size of the step
(``iqabench.efficiency.PeakMemory``: Linux VmHWM reset before the step), on a
GPU the CUDA allocator's peak. The resident size at the start of the step
(weights loaded, Python and libraries) is reported beside it.

    python benchmarks/rali_alignment_memory.py --device cpu --batches 1,2,4 --target-batch 32 --json out.json

The peak grows linearly with the batch (activations are per image); where the
target batch is not measured it is extrapolated from a least-squares line
through the measured points and marked so.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CONFIGS = {"fp32": ("fp32", False), "bf16": ("bf16", False), "fp32+ckpt": ("fp32", True), "bf16+ckpt": ("bf16", True)}
MIB = 1024 * 1024


def one_step(config: str, batch: int, device: str) -> dict:
    """Build the tower, run one alignment step inside PeakMemory, return the numbers."""
    import torch

    import iqabench  # noqa: F401  (installs the torchvision shim before transformers loads)
    from transformers import CLIPConfig, CLIPModel

    from iqabench.efficiency import PeakMemory
    from iqabench_plugins.rali.encoders import DEFAULT_HF_BACKBONE, VIT_L14_336_CONFIG, HFClipEncoder, _Processor
    from iqabench_plugins.rali.trainer import (
        _ImageTower,
        alignment_optimizer,
        alignment_step,
        enable_gradient_checkpointing,
    )

    precision, checkpointing = CONFIGS[config]
    torch.manual_seed(0)
    clip = CLIPModel(CLIPConfig(**VIT_L14_336_CONFIG))
    encoder = HFClipEncoder(clip, _Processor(None, None), DEFAULT_HF_BACKBONE, with_text=True).to(device)
    del clip
    if checkpointing:
        enable_gradient_checkpointing(encoder)
    encoder.train()
    optimizer = alignment_optimizer(encoder, lr=1e-5, projection_lr=1e-3)
    pixels = torch.randn(batch, 3, 336, 336, device=device)
    texts = torch.nn.functional.normalize(torch.randn(batch, encoder.feature_dim, device=device), dim=-1)
    ids = torch.arange(batch, device=device)
    with PeakMemory(device) as memory:
        start = time.perf_counter()
        loss = alignment_step(_ImageTower(encoder), optimizer, pixels, ids, texts, encoder.contrastive_logit_scale,
                              precision=precision)
        seconds = time.perf_counter() - start
    return {
        "config": config, "precision": precision, "gradient_checkpointing": checkpointing, "batch": batch,
        "device": device, "peak_mib": memory.peak_bytes / MIB, "start_mib": memory.baseline_bytes / MIB,
        "method": memory.method, "seconds": seconds, "loss": loss,
        "vision_parameters": sum(p.numel() for p in encoder.vision_parameters()),
        "threads": torch.get_num_threads(),
    }


def fit_line(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares intercept and slope of peak memory against batch size."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0
    return mean_y - slope * mean_x, slope


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}")
    parser.add_argument("--batches", default="1,2,4", help="batch sizes to measure, comma-separated")
    parser.add_argument("--target-batch", type=int, default=32, help="the batch to report (rali's align_batch_size)")
    parser.add_argument("--json", help="write every measurement and the table's numbers here")
    parser.add_argument("--one", nargs=2, metavar=("CONFIG", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_step(args.one[0], int(args.one[1]), args.device)))
        return 0
    measurements = []
    for config in args.configs.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            command = [sys.executable, __file__, "--device", args.device, "--one", config, str(batch)]
            result = subprocess.run(command, capture_output=True, text=True, check=True)
            measurements.append(json.loads(result.stdout.strip().splitlines()[-1]))
            print(f"{config} batch {batch}: peak {measurements[-1]['peak_mib']:.0f} MiB "
                  f"({measurements[-1]['seconds']:.1f} s)", file=sys.stderr, flush=True)
    rows = []
    for config in dict.fromkeys(m["config"] for m in measurements):
        points = [(m["batch"], m["peak_mib"]) for m in measurements if m["config"] == config]
        measured = dict(points)
        intercept, slope = fit_line(points)
        target = measured.get(args.target_batch)
        rows.append({
            "config": config, "per_image_mib": slope, "fixed_mib": intercept,
            "peak_mib_at_target": target if target is not None else intercept + slope * args.target_batch,
            "target_measured": target is not None,
        })
    print(f"| precision | gradient checkpointing | peak MiB at batch {args.target_batch} | MiB per image | "
          f"MiB at batch 0 (weights, AdamW state, runtime) | measured at batches |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        precision, checkpointing = CONFIGS[row["config"]]
        how = "" if row["target_measured"] else " (extrapolated)"
        print(f"| {precision} | {'yes' if checkpointing else 'no'} | {row['peak_mib_at_target']:,.0f}{how} | "
              f"{row['per_image_mib']:,.0f} | {row['fixed_mib']:,.0f} | {args.batches} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"measurements": measurements, "table": rows, "target_batch": args.target_batch}, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
