"""Clean the raw measurements: drop incomplete rows, sort by x."""

import csv
import os
import sys

rows = []
with open(sys.argv[1], newline="") as f:
    for row in csv.DictReader(f):
        if row["x"] and row["y"]:
            rows.append((float(row["x"]), float(row["y"])))
rows.sort()

with open(os.path.join(os.environ["OUT"], "clean.csv"), "w", newline="") as f:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(["x", "y"])
    writer.writerows(rows)
print(f"kept {len(rows)} rows")
