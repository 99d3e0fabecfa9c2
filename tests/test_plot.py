"""Plots: the files are real PNG/SVG, the missing extra is one line, and nothing imports
matplotlib unless a plot is asked for."""

from __future__ import annotations

import struct
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from perfest.cli import cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run(*args):
    return CliRunner().invoke(cli, list(args))


def png_size(path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which must come first."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def svg_text(path) -> str:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return " ".join(el.text or "" for el in root.iter() if el.tag.endswith("text"))


@pytest.mark.plot
def test_roofline_png(tmp_path):
    path = tmp_path / "roofline.png"
    r = run("roofline", "-m", "llama-2-7b", "-g", "h100-sxm", "-o", str(path))
    assert r.exit_code == 0, r.output
    assert r.stderr == f"wrote {path}\n"
    width, height = png_size(path)
    assert width > 1000 and height > 700


@pytest.mark.plot
def test_roofline_svg_is_labelled(tmp_path):
    path = tmp_path / "roofline.svg"
    # -o is the picture here; the output length keeps its long option
    r = run("roofline", "-m", "gpt2", "-g", "l4", "--output-len", "64", "-b", "8", "-o", str(path))
    assert r.exit_code == 0, r.output
    text = svg_text(path)
    for label in (
        "ridge point 403 FLOP/B",
        "bf16 matmul peak",
        "memory bandwidth 0.30 TB/s",
        "prefill ops (batch 8)",
        "decode ops (batch 8, context 544)",
        "qkv_proj",
        "arithmetic intensity",
    ):
        assert label in text, label


@pytest.mark.plot
def test_sweep_plot(tmp_path):
    png, svg = tmp_path / "sweep.png", tmp_path / "sub" / "sweep.svg"
    r = run(
        "sweep",
        "-m",
        "llama-2-7b",
        "-g",
        "h100-sxm",
        "-b",
        "1:1024:x2",
        "--json",
        "--plot",
        str(png),
    )
    assert r.exit_code == 0, r.output
    assert r.stdout.lstrip().startswith("{")  # the JSON stays clean; the note goes to stderr
    assert r.stderr == f"wrote {png}\n"
    assert png_size(png)[0] > 1000
    r = run("sweep", "-m", "gpt2", "-g", "l4,h100", "-b", "1:256:x4", "--plot", str(svg))
    assert r.exit_code == 0, r.output
    text = svg_text(svg)
    assert "output tokens/s (whole batch)" in text and "time per output token (ms)" in text
    assert "l4" in text and "h100-sxm" in text


@pytest.mark.plot
def test_single_series_sweep_plot_names_its_marks(tmp_path):
    path = tmp_path / "sweep.svg"
    r = run(
        "sweep",
        "-m",
        "llama-3-8b",
        "-g",
        "a100",
        "-b",
        "1:2048:x2",
        "-i",
        "128",
        "--plot",
        str(path),
    )
    assert r.exit_code == 0, r.output
    text = svg_text(path)
    assert "knee: decode compute-bound at" in text and "memory limit: 1,469 fit" in text


@pytest.mark.parametrize(
    "args",
    [
        ["roofline", "-m", "gpt2", "-g", "l4", "-o", "x.png"],
        ["sweep", "-m", "gpt2", "-g", "l4", "-b", "1,2", "--plot", "x.png"],
    ],
)
def test_without_matplotlib_one_line_says_how_to_install(args, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises
    r = run(*args)
    assert r.exit_code == 2
    assert r.output == "error: plots need matplotlib: pip install 'perfest[plot]'\n"
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["-o", "roofline.pdf"], "'--output' / '-o': 'roofline.pdf' must end in .png or .svg"),
        ([], "Missing option '--output'"),
        (["-o", "x.png", "-g", "h100,l4"], "--gpu: unknown device 'h100,l4'"),
    ],
)
def test_roofline_bad_input(args, message):
    argv = ["roofline", "-m", "gpt2", *(["-g", "h100"] if "-g" not in args else []), *args]
    r = run(*argv)
    assert r.exit_code == 2 and r.output.count("\n") == 1 and message in r.output, r.output


def test_nothing_else_imports_matplotlib():
    code = (
        "import sys, perfest, perfest.cli, perfest.sweep_cli, perfest.plot\n"
        "from perfest.cli import cli\n"
        "from perfest.sweeps import sweep\n"
        "cli.list_commands(None)\n"
        "sweep('gpt2', 'l4', batches=[1, 2])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


TINY = {
    "vocab_size": 64,
    "hidden_size": 16,
    "num_layers": 2,
    "num_heads": 2,
    "intermediate_size": 32,
}


@pytest.mark.plot
@pytest.mark.parametrize(
    "model, device, workload",
    [
        (TINY, "h100", {"batch": 1, "input_len": 4, "output_len": 2}),  # every op in a corner
        ("gpt2", "l4", {"batch": 1}),
        ("gpt2", "h100", {"batch": 1, "input_len": 8, "output_len": 2}),
        ("llama-2-7b", "h100", {"batch": 8}),
    ],
)
def test_roofline_labels_stay_inside_and_never_overlap(model, device, workload):
    import itertools

    from matplotlib.text import Text

    import perfest
    from perfest.plot import OP_LABEL, roofline_figure

    est = perfest.estimate(model, device, **workload)
    fig = roofline_figure(est, perfest.load_hardware(device))
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    boxes = []
    for text in ax.texts:
        text.update_positions(renderer)
        boxes.append((text.get_gid(), Text.get_window_extent(text, renderer)))
    labels = [box for gid, box in boxes if gid == OP_LABEL]
    assert len(labels) >= 8
    for box in labels:  # inside the axes
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0
        assert box.y1 <= frame.y1
    for (gid_a, a), (gid_b, b) in itertools.combinations(boxes, 2):
        if OP_LABEL in (gid_a, gid_b):  # no label on another label or on a roof's text
            width = min(a.x1, b.x1) - max(a.x0, b.x0)
            height = min(a.y1, b.y1) - max(a.y0, b.y0)
            assert width <= 0 or height <= 0


@pytest.mark.plot
def test_sweep_plot_colours_devices_and_styles_lengths(tmp_path):
    path = tmp_path / "sweep.svg"
    r = run(
        "sweep", "-m", "llama-2-7b", "-g", "a100,h100", "-b", "1:300:x3", "-i", "128,2048",
        "--plot", str(path),
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    text = svg_text(path)
    # one legend entry per device and per length pair, not per series; the best batch marked
    assert text.count("a100-80gb-sxm") == text.count("h100-sxm") == 1
    assert "128 in / 128 out" in text and " 2048 in / 128 out" in text
    assert "best throughput that fits" in text
    # a tick at every swept power of two (1, 9, 27, 81, 243 swept: only 1 is one)
    r = run("sweep", "-m", "gpt2", "-g", "l4", "-b", "1:512:x2", "--plot", str(path))
    ticks = svg_text(path).split()
    assert all(str(2**k) in ticks for k in range(10))
