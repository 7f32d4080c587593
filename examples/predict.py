"""Load a model saved by mnist_mlp.py, mnist_cnn.py or mnist_rnn.py (--save) and predict MNIST test digits.

    python examples/predict.py mlp.npz                 # first 10 test images, then accuracy on all
    python examples/predict.py cnn.npz --count 20
"""
import argparse
import os
import sys

import numpy as np

import minigrad as mg
from minigrad.data import MNIST

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import MODELS, prepare  # noqa: E402


def ascii_digit(image):
    shades = " .:-=+*#%@"
    return "\n".join("".join(shades[int(v) * (len(shades) - 1) // 255] for v in row) for row in image)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="a .npz written by --save")
    p.add_argument("--data", default=None)
    p.add_argument("--count", type=int, default=10, help="how many test images to show")
    p.add_argument("--show", action="store_true", help="draw each shown digit in ASCII")
    args = p.parse_args()

    saved = mg.load(args.model)
    name = str(saved["model"])
    model = MODELS[name]()
    model.load_state_dict(saved["state_dict"])
    model.eval()

    test = MNIST(args.data, train=False)
    images = prepare(np.asarray(test.data), name)
    labels = np.asarray(test.targets)
    with mg.no_grad():
        preds = np.concatenate([model(mg.tensor(images[i:i + 1000])).argmax(axis=1).numpy()
                                for i in range(0, len(images), 1000)])
    for i in range(min(args.count, len(labels))):
        if args.show:
            print(ascii_digit(test.data[i]))
        mark = "ok" if preds[i] == labels[i] else "WRONG"
        print(f"test image {i:5d}: predicted {preds[i]}, true {labels[i]}  {mark}")
    print(f"accuracy on all {len(labels)} test images: {(preds == labels).mean():.4f}")


if __name__ == "__main__":
    main()
