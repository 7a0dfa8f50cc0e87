"""NIQE and BRISQUE against LIVE's MATLAB releases on the shared calibration images.

    python tools/niqe_brisque_calibration.py                  # the comparison table (markdown)
    python tools/niqe_brisque_calibration.py --variants       # + how flat-region residues move each score
    python tools/niqe_brisque_calibration.py --residues       # + the gap between rounding residues and real I - mu
    python tools/niqe_brisque_calibration.py --kernel numba   # the compiled kernels instead of the NumPy reference

A development tool, not part of the installed package: it reads data that only
the project's development machines hold.

Reads ``../shared/data`` beside the repository (or ``--data DIR``): the five
TID2013 calibration images with ``reference_scores.csv`` and LIVE's four NIQE
example images (MATLAB values of ``example.m`` as reported in scikit-video
issue #116, 4 decimals). Without that folder it says so and exits 0: a
user's clone has none.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from iqabench_plugins.brisque import BRISQUE
from iqabench_plugins.niqe import NIQE
from iqabench_plugins.nss.matlab import gaussian_window, imresize_half, rgb2gray_uint8
from iqabench_plugins.nss.statistics import ZERO_RESIDUE, exact_zero_policy

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: LIVE NIQE release ``example.m`` on its own images, as reported in scikit-video issue #116.
NIQE_EXAMPLES = {"image1.png": 5.0290, "image2.png": 17.8659, "image3.png": 8.0362, "image4.png": 2.6571}
#: Signs of MATLAB's residue in flat regions of I08, per gray level, found by trying all 3^6
#: combinations: these signs reproduce both releases' I08 scores to the digits published
#: (NIQE 2e-13, BRISQUE 2e-7 relative). Shown as evidence of the cause, never used to score.
I08_MATLAB_SIGNS = {74: -1, 85: 0, 87: -1, 103: 0, 140: -1, 162: -1}
TINY = 1e-15


def reference_rows(data: Path) -> Iterator[tuple[str, str, Path, float]]:
    """(model, image name, path, MATLAB value) for the nine NIQE and five BRISQUE references."""
    calibration = data / "calibration"
    with (calibration / "reference_scores.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        yield "niqe", row["image"], calibration / row["image"], float(row["niqe_live_release"])
    for name, value in NIQE_EXAMPLES.items():
        yield "niqe", name, data / "niqe" / name, value
    for row in rows:
        yield "brisque", row["image"], calibration / row["image"], float(row["brisque_live_release"])


def score(model: NIQE | BRISQUE, path: Path) -> float:
    (result,) = model.score_batch([rgb2gray_uint8(Image.open(path))])
    return float("nan") if result.failed else float(result.value)


def _signed(sign: Callable[[NDArray[np.float64]], NDArray[np.float64]]) -> Callable[..., NDArray[np.float64]]:
    def policy(residues: NDArray[np.float64], pixels: NDArray[np.float64]) -> NDArray[np.float64]:
        # A zero image stays exactly zero in any arithmetic (0 * w = 0).
        return np.where(pixels == 0, 0.0, sign(pixels) * TINY)

    return policy


VARIANTS: dict[str, Callable[..., NDArray[np.float64]] | None] = {
    "exact zeros (iqabench)": None,
    "float64 residue of scipy's filter (iqabench before)": lambda residues, pixels: residues,
    "every residue positive": _signed(np.ones_like),
    "every residue negative": _signed(lambda pixels: -np.ones_like(pixels)),
    "I08's MATLAB signs (diagnostic)": _signed(
        lambda pixels: np.array([I08_MATLAB_SIGNS.get(int(p), 0) if p == int(p) else 0 for p in pixels])
    ),
}


def comparison(data: Path, variants: bool, kernel: str = "numpy") -> str:
    models = {"niqe": NIQE(kernel=kernel), "brisque": BRISQUE(kernel=kernel)}
    references = list(reference_rows(data))
    names = list(VARIANTS) if variants else list(VARIANTS)[:1]
    values: dict[str, list[float]] = {}
    for name in names:
        policy = VARIANTS[name]
        with exact_zero_policy(policy) if policy is not None else nullcontext():
            values[name] = [score(models[model], path) for model, _, path, _ in references]
    lines = [
        "| model | image | iqabench | MATLAB release | relative gap |",
        "|---|---|---|---|---|",
    ]
    shipped = values[names[0]]
    for (model, image, _, reference), value in zip(references, shipped, strict=True):
        lines.append(f"| {model} | {image} | {value:.6g} | {reference:.6g} | {value / reference - 1:+.1e} |")
    if variants:
        lines += ["", "Relative gap to the MATLAB release of each variant of the exact zeros:", ""]
        lines.append("| model | image | " + " | ".join(names) + " |")
        lines.append("|---|---|" + "---|" * len(names))
        for index, (model, image, _, reference) in enumerate(references):
            gaps = " | ".join(f"{values[name][index] / reference - 1:+.1e}" for name in names)
            lines.append(f"| {model} | {image} | {gaps} |")
    return "\n".join(lines)


def residue_gap(data: Path) -> str:
    """Largest rounding residue and smallest genuine |I - mu| per image, both borders, both scales."""
    from scipy.ndimage import correlate1d

    window = gaussian_window()
    lines = ["| image | largest residue below 1e-10 | smallest |I - mu| above it |", "|---|---|---|"]
    paths = sorted((data / "calibration").glob("*.png")) + sorted((data / "niqe").glob("*.png"))
    for path in paths:
        image = rgb2gray_uint8(Image.open(path)).astype(np.float64)
        small, large = 0.0, np.inf
        for mode in ("nearest", "constant"):
            scaled = image
            for _ in range(2):
                mu = correlate1d(correlate1d(scaled, window, axis=0, mode=mode), window, axis=1, mode=mode)
                residue = np.abs(scaled - mu)
                below = residue[residue < ZERO_RESIDUE]
                small = max(small, float(below.max()) if below.size else 0.0)
                large = min(large, float(residue[residue >= ZERO_RESIDUE].min()))
                scaled = imresize_half(scaled)
        lines.append(f"| {path.name} | {small:.1e} | {large:.1e} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--variants", action="store_true", help="also score the flat-region variants")
    parser.add_argument("--residues", action="store_true", help="also show the residue gap per image")
    parser.add_argument("--kernel", choices=("numpy", "numba"), default="numpy",
                        help="the NumPy reference (default) or the compiled kernels, which agree with it to ~1e-13")
    args = parser.parse_args(argv)
    if not (args.data / "calibration" / "reference_scores.csv").is_file():
        print(f"skipped: {args.data} holds no calibration/reference_scores.csv (a user's clone has no shared data)")
        return 0
    print(comparison(args.data, args.variants, args.kernel))
    if args.residues:
        print()
        print(residue_gap(args.data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
