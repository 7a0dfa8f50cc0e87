"""Peak memory of one RALI contrastive-alignment step at the paper's scale (CLIP ViT-L/14-336).

One step is what the ``rali`` trainer runs per batch: the vision tower's
forward pass on 336x336 images, the InfoNCE loss against precomputed text
embeddings, the backward pass and an AdamW update, through the trainer's own
``alignment_step``. Two steps run and the peak covers both: from the second
step on, AdamW's two moment buffers are held throughout, which is the steady
state of training. The model is the real architecture with random weights:
memory does not depend on the weight values, and nothing is downloaded. The
frozen text tower stays in memory during training; its weights are counted.

Two ways of measuring, each point in a fresh process:

* ``--method tracker`` (default): the step runs on fake tensors (shapes and
  dtypes, no data) under torch's ``MemTracker``, which adds up every tensor
  alive at each moment (weights, gradients, optimiser state, activations,
  temporaries) and reports the peak. That is what a GPU's caching allocator
  must hold at least (it adds fragmentation and kernel workspaces), it runs in
  a minute on a CPU at any batch, and bfloat16 autocast is traced as it runs.
* ``--method rss``: the step really runs (on ``--device``) and the peak is
  ``iqabench.efficiency.measure.PeakMemory``: on CPU the peak resident set size of the
  step (Linux VmHWM, reset before it), which also counts Python, the libraries
  and the C allocator's slack; on a GPU the CUDA allocator's peak. Slow on a
  CPU (bfloat16 especially, without native bfloat16 instructions): use small
  batches to check the tracker.

    python benchmarks/rali_alignment_memory.py --points "fp32=32;bf16=32;fp32+ckpt=32;bf16+ckpt=32"
    python benchmarks/rali_alignment_memory.py --method rss --device cpu --points "fp32=4,8;fp32+ckpt=8"
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CONFIGS = {"fp32": ("fp32", False), "bf16": ("bf16", False), "fp32+ckpt": ("fp32", True), "bf16+ckpt": ("bf16", True)}
MIB = 1024 * 1024


def build(checkpointing: bool, with_text: bool, config: dict | None = None, lr: float = 1e-5):
    """The ViT-L/14-336 encoder pair (or the CLIP of ``config``) in training state, and its AdamW."""
    from transformers import CLIPConfig, CLIPModel

    from iqabench_plugins.rali.encoders import DEFAULT_HF_BACKBONE, VIT_L14_336_CONFIG, HFClipEncoder, _Processor
    from iqabench_plugins.rali.trainer import alignment_optimizer, enable_gradient_checkpointing

    clip = CLIPModel(CLIPConfig(**(config or VIT_L14_336_CONFIG)))
    text_bytes = sum(p.numel() * p.element_size() for p in (*clip.text_model.parameters(),
                                                            *clip.text_projection.parameters()))
    encoder = HFClipEncoder(clip, _Processor(None, None), DEFAULT_HF_BACKBONE, with_text=with_text)
    del clip
    if checkpointing:
        enable_gradient_checkpointing(encoder)
    encoder.train()
    return encoder, alignment_optimizer(encoder, lr=lr, projection_lr=1e-3), text_bytes


def one_step(config: str, batch: int, device: str, method: str) -> dict:
    import torch

    import iqabench  # noqa: F401  (installs the torchvision shim before transformers loads)
    from iqabench_plugins.rali.trainer import _ImageTower, alignment_step

    precision, checkpointing = CONFIGS[config]
    torch.manual_seed(0)
    result = {"config": config, "precision": precision, "gradient_checkpointing": checkpointing, "batch": batch,
              "method": method, "threads": torch.get_num_threads()}
    start = time.perf_counter()
    if method == "tracker":
        from torch._subclasses.fake_tensor import FakeTensorMode
        from torch.distributed._tools.mem_tracker import MemTracker

        with FakeTensorMode():
            # the tracker hooks every parameter of the modules it sees run, so it gets the vision side only;
            # the frozen text tower's weights are added to its peak
            encoder, optimizer, text_bytes = build(checkpointing, with_text=False)
            pixels = torch.randn(batch, 3, 336, 336)
            texts = torch.nn.functional.normalize(torch.randn(batch, encoder.feature_dim), dim=-1)
            tracker = MemTracker()
            tracker.track_external(encoder, optimizer)
            with tracker:
                for _ in range(2):
                    alignment_step(_ImageTower(encoder), optimizer, pixels, torch.arange(batch), texts,
                                   encoder.contrastive_logit_scale, precision=precision)
            peak = next(iter(tracker.get_tracker_snapshot("peak").values()))
        parts = {str(getattr(key, "value", key)): value / MIB for key, value in peak.items()}
        result.update(peak_mib=parts.pop("Total") + text_bytes / MIB, text_tower_mib=text_bytes / MIB,
                      at_peak_mib=parts, device="fake tensors (no data), traced on the CPU")
    else:
        from iqabench.efficiency.measure import PeakMemory

        encoder, optimizer, _ = build(checkpointing, with_text=True)
        encoder.to(device)  # in place: the optimiser keeps its parameters
        pixels = torch.randn(batch, 3, 336, 336, device=device)
        texts = torch.nn.functional.normalize(torch.randn(batch, encoder.feature_dim, device=device), dim=-1)
        with PeakMemory(device) as memory:
            for _ in range(2):
                alignment_step(_ImageTower(encoder), optimizer, pixels, torch.arange(batch, device=device), texts,
                               encoder.contrastive_logit_scale, precision=precision)
        result.update(peak_mib=memory.peak_bytes / MIB, start_mib=memory.baseline_bytes / MIB,
                      measured_as=memory.method, device=device)
    result["seconds"] = time.perf_counter() - start
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", choices=("tracker", "rss"), default="tracker")
    parser.add_argument("--device", default="cpu", help="for --method rss")
    parser.add_argument("--points", default=";".join(f"{c}=32" for c in CONFIGS),
                        help=f"CONFIG=BATCH,BATCH;... with CONFIG one of {', '.join(CONFIGS)}")
    parser.add_argument("--json", help="write every measurement here")
    parser.add_argument("--one", nargs=2, metavar=("CONFIG", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_step(args.one[0], int(args.one[1]), args.device, args.method)))
        return 0
    measurements = []
    for config, batches in (part.split("=") for part in args.points.split(";") if part):
        if config not in CONFIGS:
            parser.error(f"unknown configuration {config!r}; choose from {', '.join(CONFIGS)}")
        for batch in (int(b) for b in batches.split(",")):
            command = [sys.executable, __file__, "--method", args.method, "--device", args.device,
                       "--one", config, str(batch)]
            result = subprocess.run(command, capture_output=True, text=True, check=True)
            measurements.append(json.loads(result.stdout.strip().splitlines()[-1]))
            print(f"{config} batch {batch}: {measurements[-1]['peak_mib']:,.0f} MiB", file=sys.stderr, flush=True)
    if args.method == "tracker":
        print("| precision | gradient checkpointing | batch | peak MiB | at the peak: weights / gradients / "
              "optimiser state / activations / temporaries (MiB) |")
        print("|---|---|---|---|---|")
        for m in measurements:
            at = m["at_peak_mib"]
            parts = " / ".join(f"{at.get(k, 0.0):,.0f}" for k in ("Parameter", "Gradient", "Optstate", "Activation",
                                                                  "Temp"))
            print(f"| {m['precision']} | {'yes' if m['gradient_checkpointing'] else 'no'} | {m['batch']} | "
                  f"{m['peak_mib']:,.0f} | {parts} (+ {m['text_tower_mib']:,.0f} frozen text tower) |")
    else:
        print("| precision | gradient checkpointing | batch | peak MiB | MiB at the start of the step | device |")
        print("|---|---|---|---|---|---|")
        for m in measurements:
            print(f"| {m['precision']} | {'yes' if m['gradient_checkpointing'] else 'no'} | {m['batch']} | "
                  f"{m['peak_mib']:,.0f} | {m['start_mib']:,.0f} | {m['device']} ({m['measured_as']}) |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(measurements, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
