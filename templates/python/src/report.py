"""Score the model on the cleaned data and write a report."""

import csv
import json
import os

import numpy as np

data = np.loadtxt("results/prepare/clean.csv", delimiter=",", skiprows=1)
with open("results/fit/model.json") as f:
    model = json.load(f)
predicted = np.polyval(model["coefficients"], data[:, 0])
residuals = data[:, 1] - predicted

out = os.environ["OUT"]
with open(os.path.join(out, "residuals.csv"), "w", newline="") as f:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(["x", "y", "predicted", "residual"])
    for (x, y), p, r in zip(data, predicted, residuals):
        writer.writerow([f"{x:.6f}", f"{y:.6f}", f"{p:.6f}", f"{r:.6f}"])

report = {
    "rows": int(len(data)),
    "rmse": float(np.sqrt(np.mean(residuals**2))),
    "max_abs_residual": float(np.max(np.abs(residuals))),
    "coefficients": model["coefficients"],
}
with open(os.path.join(out, "report.json"), "w") as f:
    json.dump(report, f, indent=2, sort_keys=True)
    f.write("\n")
print(json.dumps(report, sort_keys=True))
