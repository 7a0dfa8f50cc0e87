"""``iqabench convert rali-official SRC OUT``: the official RALI release as a pickle-free checkpoint.

Running the converter is the explicit opt-in to unpickling the release's
``pca.pkl`` (and ``ckpt.pt`` if it needs more than ``weights_only``) once;
the folder it writes loads with safetensors and JSON only.
"""

from __future__ import annotations

from pathlib import Path

from iqabench_plugins.rali.checkpoint import read_official, save_checkpoint

from iqabench.converter import Converter


class RALIOfficialConverter(Converter):
    """Official RALI release (best/, ckpt.pt, pca.pkl, basis.npz) -> iqabench RALI checkpoint."""

    name = "rali-official"

    def convert(self, source: Path, out: Path) -> Path:
        source, out = Path(source), Path(out)
        encoder, head = read_official(source, trust_pickle=True, with_text=True)
        save_checkpoint(out, encoder, head, {"converted_from": str(source.resolve()), "source": "official release"})
        return out
