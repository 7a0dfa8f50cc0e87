"""``iqabench convert rali-official SRC OUT --trust-pickle``: the official RALI release as a pickle-free checkpoint.

The release's ``pca.pkl`` is a joblib pickle of an sklearn PCA: it can only be
read by unpickling, so the converter needs the explicit ``--trust-pickle``
(``ckpt.pt`` is read with ``torch.load(weights_only=True)`` whenever the file
allows it). It reads the release as strictly as the official loader does, and
the folder it writes loads with safetensors and JSON only.
"""

from __future__ import annotations

from pathlib import Path

from iqabench.api import Converter
from iqabench_plugins.rali.checkpoint import read_official, save_checkpoint


class RALIOfficialConverter(Converter):
    """Official RALI release (best/, ckpt.pt, pca.pkl, basis.npz) -> iqabench RALI checkpoint."""

    name = "rali-official"
    reads_pickle = True
    pickled_files = "pca.pkl (a joblib pickle of an sklearn PCA) and, if weights_only cannot read it, ckpt.pt"

    def convert(self, source: Path, out: Path, *, trust_pickle: bool = False) -> Path:
        source, out = Path(source), Path(out)
        official = read_official(source, trust_pickle=trust_pickle, with_text=True)
        provenance = {"converted_from": str(source.resolve()), "source": "official release", "parts": official.parts}
        save_checkpoint(out, official.encoder, official.head, provenance)
        return out
