"""The widgets of ranlib.viz: an interactive explorer (ipywidgets) for a model's branches on a dataset.

The one module of ``ranlib.viz`` that imports ipywidgets and IPython; ``ranlib.viz`` loads it on first use of
``Explorer`` or ``explorer``, so that a training run, which draws its plots with the other modules, loads neither.

``explorer(models, dataset)`` shows, for one dataset item, the image with its ground truth, the mixed-boundary
band of that ground truth at a chosen width, the selected model's prediction (with its pixel accuracy in the
band), and below them the branch maps (``plot_branches``) of one class. Controls: image selector, class
dropdown, one toggle per branch, band-width slider, and a model switch when several models are given
(e.g. ``{"baseline": ..., "RAN": ...}``). Changing any control redraws the figure.

The current figure is ``Explorer.figure`` (a new Figure after every change), so the explorer can be built
and driven without a browser: set ``explorer.class_index.value = 3`` and read ``explorer.figure``.

Colab: its own widget renderer draws ipywidgets 7 (the version Colab installs); ipywidgets 8 widgets show only
through Colab's custom widget manager (googlecolab/colabtools#3020, #4525). The explorer uses only core widgets
that exist in both, and turns that manager on when it is shown in Colab under ipywidgets 8, and not otherwise.
"""

from __future__ import annotations

import io
import sys

import ipywidgets as widgets
from IPython.display import Image, display
from matplotlib.figure import Figure

from ranlib.data import IGNORE_INDEX, mixed_boundary_band
from ranlib.evaluate import predict
from ranlib.model import RAN, RANOutput
from ranlib.viz.branches import BRANCHES, plot_branches
from ranlib.viz.figure import new_figure
from ranlib.viz.palette import colorize, overlay


def enable_colab_widgets() -> bool:
    """In Colab with ipywidgets 8 or later, enable Colab's custom widget manager (without it the widgets do not
    render); anywhere else, or under Colab's own ipywidgets 7, do nothing. Returns whether it was enabled."""
    if "google.colab" not in sys.modules or int(widgets.__version__.split(".")[0]) < 8:
        return False
    from google.colab import output

    output.enable_custom_widget_manager()
    return True


class Explorer:
    """The widgets, the current figure and the model outputs seen so far (computed once per model and item)."""

    def __init__(self, models: dict[str, RAN], dataset, class_names: list[str] | None = None,
                 band_width: int = 4):
        if not models:
            raise ValueError("no models given: pass a model or a dict {'name': model}")
        if len(dataset) == 0:
            raise ValueError("the dataset is empty")
        self.models, self.dataset = models, dataset
        num_classes = next(iter(models.values())).num_classes
        self.class_names = class_names or [f"class {k}" for k in range(num_classes)]
        self._outputs: dict[tuple[str, int], RANOutput] = {}

        self.image = widgets.IntSlider(value=0, min=0, max=len(dataset) - 1, description="image")
        self.class_index = widgets.Dropdown(options=[(n, k) for k, n in enumerate(self.class_names)],
                                            value=min(1, num_classes - 1), description="class")
        self.branches = {b: widgets.ToggleButton(value=True, description=b) for b in BRANCHES}
        self.band_width = widgets.IntSlider(value=band_width, min=1, max=16, description="band width")
        self.model = (widgets.ToggleButtons(options=list(models), description="model", style={"button_width": "90px"})
                      if len(models) > 1 else None)
        self.output = widgets.Output()
        controls = [self.image, self.class_index, *self.branches.values(), self.band_width]
        controls += [self.model] if self.model is not None else []
        for control in controls:
            control.observe(lambda _change: self.update(), names="value")
        self.widget = widgets.VBox([widgets.HBox([self.image, self.class_index]),
                                    widgets.HBox(list(self.branches.values())),
                                    widgets.HBox([self.band_width] + ([self.model] if self.model else [])),
                                    self.output])
        self.figure: Figure | None = None
        self.update()

    @property
    def model_name(self) -> str:
        return self.model.value if self.model is not None else next(iter(self.models))

    def output_for(self, name: str, index: int) -> RANOutput:
        """The model's upsampled output on a dataset item (cached)."""
        if (name, index) not in self._outputs:
            self._outputs[(name, index)] = predict(self.models[name], self.dataset[index][0])
        return self._outputs[(name, index)]

    def draw(self) -> Figure:
        """A new figure for the current control values."""
        index, c, width, name = self.image.value, self.class_index.value, self.band_width.value, self.model_name
        image, mask = self.dataset[index]
        output = self.output_for(name, index)
        prediction = output.fused[0].argmax(0)  # (H, W)
        band = mixed_boundary_band(mask, width)  # (H, W) bool
        in_band = band.sum().item()
        scored = band & (mask != IGNORE_INDEX)  # void borders are in the band but have no right answer
        accuracy = (prediction[scored] == mask[scored]).float().mean().item() if scored.any() else float("nan")
        panels = tuple(b for b, toggle in self.branches.items() if toggle.value)

        fig = new_figure((max(9.0, 2.6 * (len(panels) + 1) + 1.2), 6.4))
        top, bottom = fig.subfigures(2, 1)
        axes = top.subplots(1, 3)
        shaded = colorize(mask).astype(float) / 255
        shaded[~band.numpy()] *= 0.25  # dim everything outside the band
        for ax, shown, title in zip(axes, (overlay(image, mask), shaded, colorize(prediction)), (
                f"item {index}: ground truth", f"mixed-boundary band, width {width} ({in_band} px)",
                f"{name} prediction (band accuracy {100 * accuracy:.0f}%)"), strict=True):
            ax.imshow(shown, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.set_axis_off()
        if panels:
            plot_branches(output, image, c, mask=mask, panels=panels, class_names=self.class_names,
                          fig=bottom)
        else:
            bottom.text(0.5, 0.5, "no branch selected", ha="center", va="center", color="0.4")
        return fig

    def png(self) -> bytes:
        """The current figure as PNG bytes, as the output widget shows it."""
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()

    def update(self) -> None:
        """Redraw: replace ``self.figure`` and show it in the output widget.

        The figure goes out as a PNG image, so it shows whatever matplotlib backend the kernel runs (a Figure
        handed to ``display`` is drawn as an image only under the inline backend; under ``MPLBACKEND=Agg`` it
        would print as ``<Figure size ...>``)."""
        self.figure = self.draw()
        with self.output:
            self.output.clear_output(wait=True)
            display(Image(data=self.png(), format="png"))

    def _ipython_display_(self):
        # display() sends a display_data message, the kind Colab adds its widget-manager metadata to
        enable_colab_widgets()
        display(self.widget)


def explorer(models: RAN | dict[str, RAN], dataset, class_names: list[str] | None = None,
             band_width: int = 4) -> Explorer:
    """Build the explorer; in a notebook, end the cell with it to show it.

    models: one model, or {name: model} (two or more give a model switch, e.g. baseline against RAN).
    dataset: items ``(image (3, H, W), mask (H, W))`` as the models expect them, e.g.
    ``ranlib.data.voc(root, "val", ranlib.data.val_transforms())``.
    """
    if isinstance(models, RAN):
        models = {models.variant: models}
    return Explorer(dict(models), dataset, class_names, band_width)
