"""Write the fit statistics as a LaTeX table (booktabs) for the paper to \\input."""

import json
import os

with open("results/analysis/fit.json") as f:
    result = json.load(f)

lines = [
    r"\begin{tabular}{lrr}",
    r"\toprule",
    r"model & coefficients & RMSE \\",
    r"\midrule",
]
for degree, fit in sorted(result["fits"].items()):
    coefficients = ", ".join(f"{c:.3f}" for c in fit["coefficients"])
    lines.append(f"degree {degree} & ({coefficients}) & {fit['rmse']:.3f} \\\\")
lines += [r"\bottomrule", r"\end{tabular}"]
with open(os.path.join(os.environ["OUT"], "table.tex"), "w") as f:
    f.write("\n".join(lines) + "\n")
