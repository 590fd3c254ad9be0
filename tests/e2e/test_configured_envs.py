"""Configured environments: the tools a paper needs work as on an installed Debian.

One project, built once: the `paper` template (numpy, matplotlib, a LaTeX paper
built with latexmk and bibtex) plus an environment of other tools whose maintainer
scripts must have run: TeX Live's formats and font maps (pdflatex, xelatex,
matplotlib's PGF backend), R's setup (ggplot2), Graphviz's plugin registry,
ImageMagick's alternatives and the CA bundle. No step works around anything, and
`verify` rebuilds every step and both environments' roots bit-for-bit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import NIX, needs_nix, reproflake

pytestmark = [needs_nix, pytest.mark.slow]

# 2023-11-14 22:13:20 UTC: not the default, so the dates below come from the project.
EPOCH = 1700000000
DATE = "November 14, 2023"
PDF_STAMP = "D:20231114221320"

TOOLS = '''
[environments.tools]
debian = ["texlive-xetex", "texlive-fonts-recommended", "python3-matplotlib", "r-base-core", "r-cran-ggplot2",
          "graphviz", "imagemagick", "ca-certificates", "poppler-utils"]

[steps.latex]
env = "tools"
run = """
printf '%s\\n' '\\\\documentclass{article}' '\\\\begin{document}' 'Written \\\\today.' '\\\\end{document}' > doc.tex
pdflatex -interaction=nonstopmode doc.tex
pdftotext doc.pdf "$OUT/pdflatex.txt"
xelatex -interaction=nonstopmode doc.tex
pdftotext doc.pdf "$OUT/xelatex.txt"
cp doc.pdf "$OUT/xelatex.pdf"
"""
outputs = ["pdflatex.txt", "xelatex.txt", "xelatex.pdf"]

[steps.pgf]
env = "tools"
run = """
python3 -c '
import os
import matplotlib
matplotlib.use("pgf")
import matplotlib.pyplot as plt
plt.plot([0, 1, 2], [1, 0, 1])
plt.title("$x^2$")
plt.savefig(os.environ["OUT"] + "/pgf.pdf")
plt.savefig(os.environ["OUT"] + "/pgf.pgf")
'
"""
outputs = ["pgf.pdf", "pgf.pgf"]

[steps.rplot]
env = "tools"
run = """
Rscript -e 'library(ggplot2)
p <- ggplot(data.frame(x = 1:5, y = c(2, 3, 5, 7, 11)), aes(x, y)) + geom_line()
ggsave(file.path(Sys.getenv("OUT"), "plot.png"), p, width = 3, height = 2, dpi = 72)
ggsave(file.path(Sys.getenv("OUT"), "plot.pdf"), p, width = 3, height = 2)'
"""
outputs = ["plot.png", "plot.pdf"]

[steps.graph]
env = "tools"
run = "echo 'digraph { data -> figure -> paper }' | dot -Tsvg > \\"$OUT/graph.svg\\""
outputs = ["graph.svg"]

[steps.image]
env = "tools"
run = "convert -size 16x16 xc:red \\"$OUT/red.gif\\" && identify \\"$OUT/red.gif\\" > \\"$OUT/identify.txt\\""
outputs = ["red.gif", "identify.txt"]

[steps.certificates]
env = "tools"
run = "python3 -c 'import ssl; print(ssl.create_default_context().cert_store_stats())' > \\"$OUT/stats.txt\\""
outputs = ["stats.txt"]

[steps.ldcache]
env = "paper"
run = "ldconfig -p > \\"$OUT/ldcache.txt\\""
outputs = ["ldcache.txt"]

[steps.papertext]
env = "tools"
run = "pdftotext results/paper/paper.pdf \\"$OUT/paper.txt\\""
needs = ["paper"]
outputs = ["paper.txt"]
'''


@pytest.fixture(scope="module")
def paper_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if NIX is None:
        pytest.skip("Nix is not installed")
    root = tmp_path_factory.mktemp("envs") / "paper"
    reproflake("init", "--template", "paper", str(root), cwd=root.parent)
    spec = root / "reproflake.toml"
    text = spec.read_text().replace(
        '[project]\nname = "paper"', f'[project]\nname = "paper"\nsource_date_epoch = {EPOCH}'
    )
    assert f"source_date_epoch = {EPOCH}" in text
    spec.write_text(text + TOOLS)
    reproflake("lock", cwd=root)
    reproflake("build", cwd=root)
    yield root


def test_paper_template_builds_with_the_projects_date(paper_project: Path) -> None:
    text = (paper_project / "results/papertext/paper.txt").read_text()
    assert "A Reproducible Paper" in text
    assert DATE in text
    # The bibliography (bibtex, run by latexmk) and the generated table made it in.
    assert "Solving Least Squares Problems" in text
    assert "degree 2" in text
    assert (paper_project / "results/figures/fit.png").read_bytes().startswith(b"\x89PNG")


def test_pdflatex_and_xelatex_run_and_print_the_projects_date(paper_project: Path) -> None:
    for engine in ("pdflatex", "xelatex"):
        assert DATE in (paper_project / f"results/latex/{engine}.txt").read_text(), engine
    # (xdvipdfmx keeps its dates in a compressed object stream; verify checks its bytes.)
    assert (paper_project / "results/latex/xelatex.pdf").read_bytes().startswith(b"%PDF")


def test_matplotlib_pgf_backend(paper_project: Path) -> None:
    assert (paper_project / "results/pgf/pgf.pdf").read_bytes().startswith(b"%PDF")
    assert "\\begin{pgfpicture}" in (paper_project / "results/pgf/pgf.pgf").read_text()


def test_r_with_ggplot2_writes_png_and_pdf_dated_by_the_project(paper_project: Path) -> None:
    assert (paper_project / "results/rplot/plot.png").read_bytes().startswith(b"\x89PNG")
    pdf = (paper_project / "results/rplot/plot.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    # R's pdf() writes the clock; the step's output carries the project's date instead.
    assert f"/CreationDate ({PDF_STAMP})".encode() in pdf


def test_graphviz_renders_svg(paper_project: Path) -> None:
    svg = (paper_project / "results/graph/graph.svg").read_text()
    assert "<svg" in svg and "figure" in svg


def test_imagemagick_convert(paper_project: Path) -> None:
    assert (paper_project / "results/image/red.gif").read_bytes().startswith(b"GIF8")
    assert "16x16" in (paper_project / "results/image/identify.txt").read_text()


def test_tls_clients_see_the_ca_bundle(paper_project: Path) -> None:
    stats = (paper_project / "results/certificates/stats.txt").read_text()
    count = int(stats.split("'x509_ca': ")[1].split(",")[0].split("}")[0])
    assert count > 100, stats


def test_the_dynamic_linkers_cache_holds_libraries_set_up_after_libc_bin(
    paper_project: Path,
) -> None:
    # libc-bin's interest in the ldconfig trigger ("interest-await") refreshes the cache
    # after later packages' postinsts made their alternatives (libblas.so.3 is one).
    cache = (paper_project / "results/ldcache/ldcache.txt").read_text()
    for soname in ("libblas.so.3", "liblapack.so.3", "libopenblas.so.0"):
        assert f"\t{soname} (" in cache, cache


def test_everything_is_bit_for_bit(paper_project: Path) -> None:
    run = reproflake("verify", cwd=paper_project)
    assert "environment paper: reproducible" in run.stdout
    assert "environment tools: reproducible" in run.stdout
    assert "all reproducible" in run.stdout
