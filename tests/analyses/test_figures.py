"""Every figure of the full fixture's report, checked as a reader would: PNG at 150 dpi or more beside an
SVG, legends off the data, readable text of consistent sizes, every axis labelled, accuracy in percent,
the final model marked in Figures 3 and 4, one panel per layer in Figure 4, and the figure against the noise
rate with one point per rate."""

import re
import xml.etree.ElementTree as ET

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from PIL import Image

from analyses.plotting import DPI, FINAL_MODEL, TEXT_PT, TITLE_PT
from tests.analyses.builders import RESNET9

EXPECTED = {"curves", "figure1", "figure2", "figure3", "figure4", "figure5a", "figure5b", "figure5c", "table1",
            "table3", "figure7", "detection", "detection_epochs", "noise", "localize_precision",
            "localize_units_to_flip", "localize_forget_keep", "memorization_histogram"}


def drawn(fig):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def all_legends(fig):
    """Figure-level legends of the figure and its sub-figures, and every axes' own."""
    out, stack = [], [fig]
    while stack:
        f = stack.pop()
        out += list(f.legends)
        stack += list(f.subfigs)
    return out + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]


def plots(fig):
    """The axes that show data (not hidden, not a gallery thumbnail, not a colour bar)."""
    return [ax for ax in fig.axes if ax.get_visible() and ax.axison and ax.get_label() != "<colorbar>"]


def test_every_figure_is_written_as_png_at_150_dpi_and_svg(report_index, report_figures):
    assert DPI >= 150
    assert set(report_figures) == EXPECTED
    folder = report_index.parent / "figures"
    assert {p.stem for p in folder.glob("*.png")} == {p.stem for p in folder.glob("*.svg")} == EXPECTED
    for stem, fig in report_figures.items():
        with Image.open(folder / f"{stem}.png") as png:
            dpi = png.info["dpi"]
            assert min(dpi) >= 149.9, (stem, dpi)  # pHYs, as written
            width, height = fig.get_size_inches()
            assert png.size == pytest.approx((width * DPI, height * DPI), abs=1), stem  # pixels, as drawn
        root = ET.parse(folder / f"{stem}.svg").getroot()
        assert root.tag.endswith("svg") and float(root.get("width").removesuffix("pt")) == pytest.approx(width * 72)


def test_the_page_shows_each_png_and_links_its_svg(report_index):
    page = report_index.read_text()
    shown = re.findall(r'<img src="figures/([^"]+)\.png" data-svg="figures/([^"]+)\.svg"', page)
    assert sorted(a for a, b in shown) == sorted(EXPECTED) and all(a == b for a, b in shown)
    for stem in EXPECTED:
        assert f'<a href="figures/{stem}.svg">SVG</a>' in page


def test_legends_sit_outside_every_plot_and_inside_the_figure(report_figures):
    for stem, fig in report_figures.items():
        renderer = drawn(fig)
        page = fig.bbox
        for legend in all_legends(fig):
            box = legend.get_window_extent(renderer)
            assert page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1 and page.y0 - 1 <= box.y0, (stem, box, page)
            for ax in plots(fig):
                area = ax.get_window_extent(renderer)
                overlap = box.intersection(box, area)
                assert overlap is None or overlap.width < 1 or overlap.height < 1, (stem, ax.get_title(), box, area)


def test_text_is_readable_and_titles_at_least_nine_points(report_figures):
    for stem, fig in report_figures.items():
        texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
        assert texts, stem
        small = {(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < TEXT_PT}
        assert not small, (stem, sorted(small)[:5])
        # a gallery thumbnail's title is its caption (id, label), 8 pt; its block's heading is a title
        titles = [ax.title for ax in fig.axes if ax.title.get_text()] if stem != "figure7" else []
        titles += [f._suptitle for f in [fig, *fig.subfigs] if f._suptitle is not None]
        assert titles, stem
        assert all(t.get_fontsize() >= max(9.0, TITLE_PT - 0.5) for t in titles), stem
        sizes = {round(t.get_fontsize(), 1) for t in texts}
        assert len(sizes) <= 4, (stem, sizes)  # one style: a few sizes, not each panel its own


def test_every_plot_has_labelled_axes_and_accuracy_in_percent(report_figures):
    for stem, fig in report_figures.items():
        if stem == "figure7":  # a gallery of images: no axes to label
            assert not plots(fig)
            continue
        for ax in plots(fig):
            parent = ax.get_figure(root=False)
            ylabel = ax.get_ylabel() or parent.get_supylabel()
            shared = not any(t.get_visible() and t.get_text() for t in ax.get_yticklabels())
            assert ylabel or shared, (stem, ax.get_title())
            xlabel = ax.get_xlabel() or parent.get_supxlabel()
            assert xlabel or not any(t.get_text() for t in ax.get_xticklabels()), (stem, ax.get_title())
            for label in (ylabel, xlabel):
                if "accuracy" in label and "lost" not in label:
                    assert "(%)" in label, (stem, label)
        for bar in (ax for ax in fig.axes if ax.get_label() == "<colorbar>"):
            assert bar.get_ylabel(), stem
            if "accuracy" in bar.get_ylabel():
                assert "(%)" in bar.get_ylabel() and bar.get_ylim() == (0.0, 100.0)
    assert "percentage points" in plots(report_figures["figure5b"])[0].get_ylabel()


def test_figures_3_and_4_mark_the_final_model(report_figures):
    for stem in ("figure3", "figure4"):
        marks = [line for ax in report_figures[stem].axes for line in ax.lines if line.get_gid() == FINAL_MODEL]
        assert marks, stem
    heatmaps = [ax for ax in report_figures["figure3"].axes if ax.images]
    assert all(ax.get_xticklabels()[-1].get_text() == "final" for ax in heatmaps)


def test_figure4_has_one_panel_per_layer_of_the_resnet(report_figures):
    subs = report_figures["figure4"].subfigs
    resnet = next(sub for sub in subs if "resnet9" in sub._suptitle.get_text())
    titles = [ax.get_title() for ax in resnet.axes if ax.get_visible()]
    assert titles == [f"{i} {name}" for i, name in enumerate(RESNET9)]


def test_the_noise_rate_figure_has_one_point_per_rate(report_figures, report_index):
    fig = report_figures["noise"]
    (sub,) = fig.subfigs  # only digits / mlp / standard has two noise rates in the fixture
    assert "digits / mlp / standard" in sub._suptitle.get_text()
    for ax in (ax for ax in sub.axes if ax.get_visible()):
        for series in ax.containers:
            assert list(series.lines[0].get_xdata()) == pytest.approx([10, 20], abs=1.0)  # dodged side by side
    page = report_index.read_text()
    assert '<h3 id="noise">Against the noise rate</h3>' in page and 'href="#noise"' in page
