"""Image classifiers: a CNN built from stconv's 2D conv block, and an MLP baseline."""

import math
from collections.abc import Sequence

import jax
from flax import nnx

from stconv.models.layers import ConvBlock


def check_images(x: jax.Array) -> None:
    if x.ndim != 4:
        raise ValueError(
            f"images of shape {tuple(x.shape)} are invalid: must have rank 4, "
            "(batch, height, width, channels)"
        )


class CNN(nnx.Module):
    """ConvBlocks (3 x 3, 'same') with 2 x 2 max-pooling between them, then a dense head.

    Args:
      image_shape: ``(height, width, channels)``.
      num_classes: output logits.
      features: channels of each conv block.
      rngs: random streams.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        num_classes: int = 10,
        features: Sequence[int] = (16, 32),
        *,
        rngs: nnx.Rngs,
    ):
        height, width, in_features = image_shape
        self.blocks = nnx.List()
        for out_features in features:
            self.blocks.append(
                ConvBlock(in_features, out_features, (3, 3), padding=((1, 1), (1, 1)), rngs=rngs)
            )
            in_features = out_features
            height, width = height // 2, width // 2
        self.head = nnx.Linear(height * width * in_features, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        check_images(x)
        for block in self.blocks:
            x = nnx.max_pool(block(x), window_shape=(2, 2), strides=(2, 2))
        return self.head(x.reshape(x.shape[0], -1))


class MLP(nnx.Module):
    """Fully connected layers with ReLU on the flattened image, of comparable depth."""

    def __init__(
        self,
        image_shape: Sequence[int],
        num_classes: int = 10,
        features: Sequence[int] = (128, 64),
        *,
        rngs: nnx.Rngs,
    ):
        in_features = math.prod(image_shape)
        self.layers = nnx.List()
        for out_features in features:
            self.layers.append(nnx.Linear(in_features, out_features, rngs=rngs))
            in_features = out_features
        self.head = nnx.Linear(in_features, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        check_images(x)
        x = x.reshape(x.shape[0], -1)
        for layer in self.layers:
            x = nnx.relu(layer(x))
        return self.head(x)


CLASSIFIERS = {"cnn": CNN, "mlp": MLP}
