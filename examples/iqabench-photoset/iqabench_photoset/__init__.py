"""An example third-party iqabench plugin: a dataset distributed as images and two text files.

"PhotoSet" is made up, but laid out as many IQA datasets are::

    photoset/
      images/           the photographs
      scores.txt        one line per image: name, mean opinion score (0-10), standard deviation
      test.txt          the names of the test images (the others are for training)

The plugin reads these files as distributed and hands the rows to
``build_index``, which rescales the scores to [1, 5], keeps every image inside
the dataset's folder and records where each number came from.
"""

from __future__ import annotations

from iqabench.api import Dataset, DatasetIndex, IQABenchError, build_index, hookimpl


class PhotoSet(Dataset):
    """PhotoSet: photographs rated 0-10 by a panel (an example dataset plugin)."""

    name = "photoset"
    title = "PhotoSet"
    default_dir = "photoset"  # found as <data root>/photoset when no root is given
    homepage = "https://example.org/photoset (an example)"
    expected_files = ("scores.txt", "test.txt", "images/<name>")

    def load(self) -> DatasetIndex:
        scores = self.root / "scores.txt"
        if not scores.is_file():
            raise self.missing_error("scores.txt not found")
        test_list = self.root / "test.txt"
        test = set(test_list.read_text().split()) if test_list.is_file() else set()
        rows = []
        for number, line in enumerate(scores.read_text().splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split()
            if len(fields) != 3:
                raise IQABenchError(f"{scores}, line {number}: expected `name mos std`, found {line!r}.")
            name, mos, std = fields
            rows.append({
                "image": f"images/{name}",
                "mos_raw": float(mos),
                "std_raw": float(std),
                "split": "test" if name in test else "train",
                "source": f"scores.txt, line {number}",
            })
        return build_index(
            self.name, self.root, rows,
            direction="higher_better",
            label_files=["scores.txt", "test.txt"],
            nominal_range=(0, 10),
            split_source="test.txt lists the test images; the others are train",
            allow_outside_root=self.allow_outside_root,
        )


@hookimpl
def iqabench_datasets():
    return [PhotoSet]
