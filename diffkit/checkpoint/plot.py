"""Draw a schedule: step index against action order (the classic revolve picture), and the
number of states held over time. matplotlib is optional: ``pip install diffkit[plot]``."""

from __future__ import annotations

from diffkit.checkpoint.actions import Advance, Discard, Forward, Load, Reverse, Save
from diffkit.errors import DiffkitError

__all__ = ["plot_schedule"]


def plot_schedule(schedule: object, path: str, n_steps: int | None = None,
                  max_actions: int = 200_000) -> None:
    """Write a PNG of ``schedule``'s actions (at most ``max_actions`` of them) to ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise DiffkitError("plotting needs matplotlib: install diffkit[plot] "
                           "(pip install 'diffkit[plot]')") from exc
    stream = schedule.actions() if getattr(schedule, "n_steps", None) else \
        schedule.actions(n_steps)
    xs, ys, colors, held, count = [], [], [], [], 0
    for k, a in enumerate(stream):
        if k >= max_actions:
            break
        match a:
            case Advance(start, stop):
                xs += [k, k]; ys += [start, stop]; colors += ["tab:blue"] * 2  # noqa: E702
            case Forward(step) | Reverse(step):
                xs.append(k); ys.append(step); colors.append("tab:red")  # noqa: E702
            case Save() | Load() | Discard():
                count += 1 if isinstance(a, Save) else -1 if isinstance(a, Discard) else 0
        held.append(count)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.scatter(xs, ys, c=colors, s=2)
    top.set_ylabel("step index")
    top.set_title(f"{schedule!r}: advances (blue), taping/reverse (red)")
    bottom.plot(held)
    bottom.set_xlabel("action")
    bottom.set_ylabel("states held")
    fig.savefig(path, dpi=100)
    plt.close(fig)
