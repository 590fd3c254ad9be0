"""Draw the measurements and the fitted curves (PDF for the paper, PNG for the web)."""

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

data = np.loadtxt(sys.argv[1], delimiter=",", skiprows=1)
with open("results/analysis/fit.json") as f:
    fits = json.load(f)["fits"]

fig, ax = plt.subplots(figsize=(4.5, 3))
ax.scatter(data[:, 0], data[:, 1], s=8, color="0.4", label="measurements")
grid = np.linspace(data[:, 0].min(), data[:, 0].max(), 200)
for degree, style in (("1", "--"), ("2", "-")):
    ax.plot(grid, np.polyval(fits[degree]["coefficients"], grid), style, label=f"degree {degree}")
ax.set_xlabel("$x$")
ax.set_ylabel("$y$")
ax.legend(frameon=False)
fig.tight_layout()
out = os.environ["OUT"]
fig.savefig(os.path.join(out, "fit.pdf"))
fig.savefig(os.path.join(out, "fit.png"), dpi=150)
