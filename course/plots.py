"""seaborn helpers: every chart titled, every axis labelled with its unit."""
from __future__ import annotations


def set_theme() -> None:
    """The one seaborn theme every chart of the course uses."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")


def bar_chart(data, x: str, y: str, *, title: str, xlabel: str, ylabel: str, hue: str | None = None,
              log: bool = False, ax=None, annotate: bool = True, fmt: str = "{:,.1f}"):
    """A bar chart of `data` (a DataFrame); `annotate` writes each bar's value on it. Returns the axes."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    set_theme()
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    sns.barplot(data=data, x=x, y=y, hue=hue, ax=ax)
    if log:
        import math

        ax.set_yscale("log")
        # Start a decade below the smallest bar, so that small bars are not cut to slivers.
        ax.set_ylim(bottom=10 ** (math.floor(math.log10(max(data[y].min(), 1))) - 1))
    if annotate:
        for container in ax.containers:
            ax.bar_label(container, labels=[fmt.format(v) for v in container.datavalues], fontsize=8)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return ax


def line_chart(data, x: str, y: str, *, title: str, xlabel: str, ylabel: str, hue: str | None = None,
               logy: bool = False, markers: bool = False, ax=None):
    """A line chart of `data` (a DataFrame), one line per `hue` value. Returns the axes.

    `markers` draws every point, so that a series of one point (which has no line) still shows."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    set_theme()
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    sns.lineplot(data=data, x=x, y=y, hue=hue, ax=ax, marker="o" if markers else None)
    if logy:
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return ax


def loss_curve(history, *, title: str = "Training loss", ylabel: str = "loss (nats)", ax=None):
    """The training loss of a `ftkit.train.TrainResult` (or several, as a {label: result} dict)."""
    import pandas as pd

    runs = history if isinstance(history, dict) else {"training": history}
    frame = pd.DataFrame([{"step": step, "loss": loss, "run": label}
                          for label, result in runs.items() for step, loss in result.losses])
    return line_chart(frame, "step", "loss", hue="run" if len(runs) > 1 else None, title=title,
                      xlabel="optimizer step", ylabel=ylabel, ax=ax)


def stacked_bar_chart(data, index: str, columns: list[str], *, title: str, xlabel: str, ylabel: str,
                      labels: list[str] | None = None, ax=None):
    """Bars of `index` values made of stacked `columns` (e.g. memory components). Returns the axes."""
    import matplotlib.pyplot as plt

    set_theme()
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    frame = data.set_index(index)[columns]
    if labels:
        frame.columns = labels
    frame.plot(kind="bar", stacked=True, ax=ax, rot=0)
    for total, x in zip(frame.sum(axis=1), range(len(frame))):
        ax.annotate(f"{total:,.1f}", (x, total), ha="center", va="bottom", fontsize=9)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return ax


def metric_panels(data, x: str, metrics: dict[str, str], *, title: str, xlabel: str):
    """One small line chart per column of `data` named in `metrics` (column -> y-axis label), side by
    side under one title. Returns the figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    set_theme()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.5))
    for ax, (column, label) in zip(axes, metrics.items()):
        sns.lineplot(data=data, x=x, y=column, marker="o", ax=ax)
        ax.set(title=label, xlabel=xlabel, ylabel=label)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
