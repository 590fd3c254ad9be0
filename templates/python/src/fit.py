"""Fit a polynomial to the cleaned data with numpy's least squares."""

import json
import os

import numpy as np

data = np.loadtxt("results/prepare/clean.csv", delimiter=",", skiprows=1)
degree = int(os.environ["DEGREE"])
design = np.vander(data[:, 0], degree + 1)
coef, residuals, rank, _ = np.linalg.lstsq(design, data[:, 1], rcond=None)

model = {
    "degree": degree,
    "coefficients": [float(c) for c in coef],
    "rank": int(rank),
    "numpy": np.__version__,
}
with open(os.path.join(os.environ["OUT"], "model.json"), "w") as f:
    json.dump(model, f, indent=2, sort_keys=True)
    f.write("\n")
