"""The image-classification baseline: CNN vs MLP on real handwritten digits.

    pip install 'stconv[mnist]'
    python experiments/classify.py --workdir runs/mnist-5k

Prints test accuracy, trainable parameters and training time of both models
and writes a confusion-matrix PNG for each (the same as ``stconv classify``).
"""

import sys

from stconv import cli

if __name__ == "__main__":
    sys.exit(cli.main(["classify", *sys.argv[1:]]))
