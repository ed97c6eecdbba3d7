"""The report's charts (matplotlib, Agg backend): PNG bytes from the report's frames.

Three charts, each readable from three months to sixteen years of trade dates:

* :func:`roll_overview` -- the selected contract per trade date as the number of days
  until its contract month (a saw tooth: each roll is a jump up, a flip back to an
  earlier expiry a jump down, marked red; a roll with a stale gap marked by a purple
  diamond), the runner-up as grey dots, and below it the day's outright volume split
  into the selected contract's share and those of the contracts expiring before and
  after it, each roll's share marked (how decisive it was; without term structure:
  the selected contract's share of the top two contracts' volume, near ties marked).
* :func:`roll_detail` -- the last trade dates (about a year) as a contract ladder:
  one row per contract, named, so which contract was chosen on which day can be read.
* :func:`bars_per_day` -- bars per trade date against the minutes of the CME session
  (thin days marked), and the longest stretch of a session without a bar.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Annotation  # noqa: E402

#: Share of the top two below which a trade date counts as a near tie.
NEAR_TIE = 0.55
#: Trade dates shown by the detail chart.
DETAIL_DAYS = 260

SELECTED = "#1f4e8c"
RUNNER_UP = "#9a9a9a"
FLIP = "#d62728"
TIE = "#ff7f0e"
STALE = "#7b2cbf"


def to_png(fig: Figure, dpi: int = 100) -> bytes:
    """Render ``fig`` as PNG bytes and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def _date_axis(ax: plt.Axes, first: pd.Timestamp, last: pd.Timestamp) -> None:
    span_days = max((last - first).days, 1)
    if span_days > 3 * 365:
        ax.xaxis.set_major_locator(mdates.YearLocator())
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))
        ax.xaxis.set_minor_locator(mdates.MonthLocator(bymonth=(1, 4, 7, 10)))
    elif span_days > 200:
        ax.xaxis.set_major_locator(mdates.MonthLocator(bymonth=(1, 4, 7, 10)))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m"))
        ax.xaxis.set_minor_locator(mdates.MonthLocator())
    elif span_days > 45:
        ax.xaxis.set_major_locator(mdates.MonthLocator())
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m"))
        ax.xaxis.set_minor_locator(mdates.WeekdayLocator(byweekday=mdates.MO))
    else:
        ax.xaxis.set_major_locator(mdates.WeekdayLocator(byweekday=mdates.MO))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
        ax.xaxis.set_minor_locator(mdates.DayLocator())
    pad = pd.Timedelta(days=max(1, span_days // 100))
    ax.set_xlim(float(mdates.date2num(first - pad)), float(mdates.date2num(last + pad)))


def _size(n: int, small: float, large: float) -> float:
    """Marker size: ``large`` for a few months of trade dates, ``small`` for many years."""
    if n <= 150:
        return large
    if n >= 1500:
        return small
    return large + (small - large) * (n - 150) / 1350


def _empty(title: str) -> bytes:
    fig = plt.figure(figsize=(10, 2))
    fig.text(0.5, 0.5, f"{title}: no trade dates committed", ha="center", va="center")
    return to_png(fig)


def roll_overview(days: pd.DataFrame, rolls: pd.DataFrame, symbol: str) -> bytes:
    """:func:`roll_overview_figure` as PNG bytes."""
    title = f"{symbol}: front contract per trade date"
    if days.empty:
        return _empty(title)
    return to_png(roll_overview_figure(days, rolls, symbol))


def roll_overview_figure(days: pd.DataFrame, rolls: pd.DataFrame, symbol: str) -> Figure:
    """The roll chart over the whole range (see the module docstring).

    Args:
        days: one row per trade date (at least one): ``trade_date`` (datetime64),
            ``source_symbol``, ``days_to_month`` (of the selected contract),
            ``runner_up_days_to_month`` (NaN without runner-up), ``share_top2``, and
            optionally ``earlier_share`` / ``day_share`` / ``later_share`` (the
            day's outright volume split into the contracts expiring before the
            selected one, the selected one, and those after it; NaN where unknown).
            With any of these known, the lower panel stacks the three (how decisive
            each roll was: the later contracts' share grows into the roll, the
            earlier ones' lingers after it); else it shows the selected contract's
            share of the top two's volume.
        rolls: one row per roll: ``trade_date``, ``from_symbol``, ``to_symbol``, ``kind``
            (``roll`` or ``back to an earlier expiry``), optionally ``stale`` (bool).

    Contracts are counted as (raw symbol, expiry) pairs (``days["expiry"]``, ``YYYYMM``).

    Returns:
        The figure, laid out (roll-back labels placed by :func:`place_labels`, gid
        ``flip-label``).
    """
    title = f"{symbol}: front contract per trade date"
    x = pd.DatetimeIndex(days["trade_date"])
    first, last = x.min(), x.max()
    fig, (top, bottom) = plt.subplots(
        2,
        1,
        figsize=(14, 7.5),
        sharex=True,
        gridspec_kw={"height_ratios": [3, 1.4], "hspace": 0.08},
        layout="constrained",
    )
    top.scatter(
        x,
        days["runner_up_days_to_month"],
        s=_size(len(days), 3, 14),
        color=RUNNER_UP,
        alpha=0.6,
        label="runner-up (second by volume)",
        zorder=2,
        linewidths=0,
    )
    top.step(
        x,
        days["days_to_month"],
        where="post",
        color=SELECTED,
        linewidth=1.1,
        label="selected contract",
        zorder=3,
    )
    flips = rolls[rolls["kind"] != "roll"] if not rolls.empty else rolls
    forward = rolls[rolls["kind"] == "roll"] if not rolls.empty else rolls
    if not forward.empty:
        at = days.set_index("trade_date")["days_to_month"]
        rx = pd.DatetimeIndex(forward["trade_date"])
        top.scatter(
            rx,
            at.reindex(rx).to_numpy(),
            marker="^",
            s=16,
            color=SELECTED,
            zorder=4,
            label=f"roll to a later expiry: {len(forward)}",
        )
    if not flips.empty:
        at = days.set_index("trade_date")["days_to_month"]
        fx = pd.DatetimeIndex(flips["trade_date"])
        top.scatter(
            fx,
            at.reindex(fx).to_numpy(),
            marker="v",
            s=60,
            color=FLIP,
            zorder=4,
            label=f"roll back to an earlier expiry: {len(flips)}",
        )
    stale = rolls[rolls["stale"].astype(bool)] if "stale" in rolls and not rolls.empty else rolls
    if not stale.empty:
        at = days.set_index("trade_date")["days_to_month"]
        sx = pd.DatetimeIndex(stale["trade_date"])
        top.scatter(
            sx,
            at.reindex(sx).to_numpy(),
            marker="D",
            s=34,
            facecolors="none",
            edgecolors=STALE,
            linewidths=1.3,
            zorder=4,
            label=f"stale gap (last bars > 5 min apart or none): {len(stale)}",
        )
    _label_segments(top, days)
    top.set_ylabel("days from trade date\nto the contract month")
    top.set_ylim(bottom=min(-5.0, float(np.nanmin(days["days_to_month"])) - 5))
    top.grid(axis="y", alpha=0.3)
    top.legend(loc="upper left", fontsize=8, ncols=3, framealpha=0.9)
    n_rolls = len(rolls)
    n_flips = len(flips)
    top.set_title(
        f"{title}: {len(days)} trade dates, "
        f"{len(days[['source_symbol', 'expiry']].drop_duplicates())} contracts, "
        f"{n_rolls} rolls ({n_flips} back to an earlier expiry)",
        fontsize=11,
        loc="left",
    )

    if "day_share" in days and days["day_share"].notna().any():
        _term_shares(bottom, days, rolls)
    else:
        _top_two_share(bottom, days)
    bottom.set_xlabel("trade date")
    _date_axis(bottom, first, last)
    if not flips.empty:
        at = days.set_index("trade_date")["days_to_month"]
        place_labels(
            top,
            [(r["trade_date"], at.get(r["trade_date"], 0),
              f"{r['from_symbol']}→{r['to_symbol']}\n{r['trade_date']:%Y-%m-%d}")
             for r in flips.head(FLIP_LABELS).to_dict("records")],
            gid="flip-label",
            color=FLIP,
            va="bottom",
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": FLIP, "lw": 0.5},
        )  # fmt: skip
    return fig


#: Roll-backs labelled at most, the first first.
FLIP_LABELS = 12
#: Tones of the contracts expiring before the selected one, and after it.
EARLIER = "#bdbdbd"
LATER = "#f4b183"


def _term_shares(ax: plt.Axes, days: pd.DataFrame, rolls: pd.DataFrame) -> None:
    """The day's outright volume split by expiry, stacked: the selected contract's share
    from 0 (read off the axis), the contracts expiring before it, then after it; each
    roll day's share of the new contract marked, and near ties of the top two."""
    x = pd.DatetimeIndex(days["trade_date"])
    mine, earlier, later = (
        days[c].to_numpy(dtype=float) * 100 for c in ("day_share", "earlier_share", "later_share")
    )
    ax.stackplot(
        x, mine, earlier, later,
        colors=(SELECTED, EARLIER, LATER), step="post", linewidth=0, zorder=1,
        labels=("selected contract", "contracts expiring before it",
                "contracts expiring after it"),
    )  # fmt: skip
    tie = days["share_top2"].to_numpy(dtype=float) < NEAR_TIE
    ax.scatter(x[tie], mine[tie], s=12, color=TIE, zorder=4,
               label=f"near tie (< {NEAR_TIE:.0%} of the top two): {int(tie.sum())}")  # fmt: skip
    if not rolls.empty:
        share = pd.Series(mine, index=x)
        rx = pd.DatetimeIndex(rolls["trade_date"])
        ax.scatter(rx, share.reindex(rx).to_numpy(), s=18, facecolors="white",
                   edgecolors="black", linewidths=0.7, zorder=3,
                   label="share of the new contract on a roll day")  # fmt: skip
    ax.set_ylim(0, 100)
    ax.set_ylabel("share of the day's\noutright volume (%)")
    ax.grid(axis="y", alpha=0.4, color="white", linewidth=0.6)
    ax.set_axisbelow(False)
    ax.legend(loc="upper left", bbox_to_anchor=(0, -0.32), fontsize=8, ncols=3, frameon=False)


def _top_two_share(ax: plt.Axes, days: pd.DataFrame) -> None:
    """The selected contract's share of the top two's volume, near ties marked."""
    x = pd.DatetimeIndex(days["trade_date"])
    share = days["share_top2"].to_numpy(dtype=float) * 100
    ax.plot(x, share, color=SELECTED, linewidth=0.6,
            marker="o" if len(days) <= 400 else None, markersize=2.5, zorder=2)  # fmt: skip
    tie = share < NEAR_TIE * 100
    ax.scatter(x[tie], share[tie], s=10, color=TIE, zorder=3,
               label=f"near tie (< {NEAR_TIE:.0%}): {int(tie.sum())} trade dates")  # fmt: skip
    ax.axhline(50, color="black", linewidth=0.6, linestyle=":")
    lowest = float(np.nanmin(share)) if np.isfinite(share).any() else 50.0
    ax.set_ylim(min(45.0, lowest - 3), 101)
    ax.set_ylabel("selected share of\nthe top two's volume (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)


def _label_segments(ax: plt.Axes, days: pd.DataFrame, max_labels: int = 28) -> None:
    """Name the selected contract at the start of its segments, at most ``max_labels``:
    a segment starting within 1/``max_labels`` of the range after the last one named is
    left unnamed (a flip-flop of short segments gets one name, not a pile)."""
    change = days["source_symbol"].ne(days["source_symbol"].shift())
    starts = days[change]
    first, last = days["trade_date"].min(), days["trade_date"].max()
    apart = (last - first) / max_labels
    named: list[dict] = []
    for row in starts.to_dict("records"):
        if not named or row["trade_date"] - named[-1]["trade_date"] >= apart:
            named.append(row)
    near_end = first + (last - first) * 0.96
    rotate = len(named) > 14
    for row in named:
        ax.annotate(
            str(row["source_symbol"]),
            (row["trade_date"], row["days_to_month"]),
            xytext=(2, 3),
            textcoords="offset points",
            fontsize=7,
            color=SELECTED,
            rotation=90 if rotate else 0,
            ha="right" if row["trade_date"] > near_end else "left",
            va="bottom",
        )


def roll_detail(
    days: pd.DataFrame, rolls: pd.DataFrame, symbol: str, last_n: int = DETAIL_DAYS
) -> bytes:
    """The last ``last_n`` trade dates as a contract ladder with contract names.

    Args:
        days: as for :func:`roll_overview`, plus ``runner_up`` and ``expiry`` / ``runner_up_expiry``
            (``YYYYMM`` integers ordering the contracts).
    """
    if days.empty:
        return _empty(f"{symbol}: selected contract and runner-up")
    part = days.tail(last_n).reset_index(drop=True)
    which = f"last {len(part)}" if len(part) < len(days) else f"all {len(part)}"
    title = f"{symbol}: selected contract and runner-up, {which} trade dates"
    contracts = (
        pd.concat(
            [
                part[["source_symbol", "expiry"]].rename(columns={"source_symbol": "c"}),
                part[["runner_up", "runner_up_expiry"]]
                .dropna()
                .rename(columns={"runner_up": "c", "runner_up_expiry": "expiry"}),
            ]
        )
        .drop_duplicates("c")
        .sort_values(["expiry", "c"])
    )
    row_of = {c: i for i, c in enumerate(contracts["c"])}
    height = min(10.0, 3.4 + 0.28 * len(row_of))
    fig, ax = plt.subplots(figsize=(14, height), layout="constrained")
    x = pd.DatetimeIndex(part["trade_date"])
    share = part["share_top2"].to_numpy(dtype=float)
    sel_y = part["source_symbol"].map(row_of).to_numpy(dtype=float)
    points = ax.scatter(
        x,
        sel_y,
        c=share * 100,
        cmap="viridis_r",
        vmin=50,
        vmax=100,
        s=22,
        marker="s",
        zorder=3,
        label="selected (colour: share of the top two)",
    )
    has_runner = part["runner_up"].notna()
    ax.scatter(
        x[has_runner.to_numpy()],
        part.loc[has_runner, "runner_up"].map(row_of).to_numpy(dtype=float),
        facecolors="none",
        edgecolors=RUNNER_UP,
        s=18,
        zorder=2,
        label="runner-up",
    )
    tie = share < NEAR_TIE
    if tie.any():
        ax.scatter(
            x[tie],
            sel_y[tie],
            marker="o",
            s=90,
            facecolors="none",
            edgecolors=TIE,
            linewidths=1.4,
            zorder=4,
            label=f"near tie (< {NEAR_TIE:.0%})",
        )
    shown = rolls[rolls["trade_date"] >= x.min()] if not rolls.empty else rolls
    for row in shown.to_dict("records"):
        colour = FLIP if row["kind"] != "roll" else "black"
        stale = bool(row.get("stale", False))
        ax.axvline(
            row["trade_date"],
            color=STALE if stale and colour == "black" else colour,
            linewidth=0.9 if stale else 0.6,
            linestyle="--" if stale else "-",
            alpha=0.6,
            zorder=1,
        )
        ax.annotate(
            f"{row['to_symbol']} {row['trade_date']:%m-%d}",
            (row["trade_date"], 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, 3),
            textcoords="offset points",
            fontsize=7,
            color=colour,
            rotation=90,
            ha="center",
            va="bottom",
            annotation_clip=False,
        )
    ax.set_yticks(range(len(row_of)), list(row_of))
    ax.set_ylim(-0.7, len(row_of) - 0.3)
    ax.set_ylabel("contract (ordered by expiry)")
    ax.set_xlabel(
        "trade date (vertical lines: rolls, red: back to an earlier expiry, dashed: stale gap)"
    )
    ax.grid(axis="y", alpha=0.25)
    ax.set_title(title, fontsize=11, loc="left", pad=64)
    fig.legend(loc="outside lower center", fontsize=8, ncols=3)
    fig.colorbar(points, ax=ax, pad=0.01, label="selected share of the top two (%)")
    _date_axis(ax, x.min(), x.max())
    return to_png(fig)


def bars_per_day(
    days: pd.DataFrame, symbol: str, session_calendar: str, thin_fraction: float
) -> bytes:
    """:func:`bars_per_day_figure` as PNG bytes."""
    title = f"{symbol}: bars per trade date (selected contract)"
    if days.empty:
        return _empty(title)
    return to_png(bars_per_day_figure(days, symbol, session_calendar, thin_fraction))


def bars_per_day_figure(
    days: pd.DataFrame, symbol: str, session_calendar: str, thin_fraction: float
) -> Figure:
    """Bars per trade date against the minutes of its own CME session, and the longest
    hole; the thinnest thin days labelled with their dates, at most
    :data:`THIN_LABELS`, none over another (:func:`place_labels`; their ``gid`` is
    ``thin-label``).

    Args:
        days: one row per trade date (at least one): ``trade_date``, ``bars``,
            ``session_bars`` / ``session_minutes`` (of its own session; NaN without
            one: ``bars`` / ``expected_minutes`` are shown), ``expected_minutes``,
            ``coverage`` (bars / minutes), ``relative_coverage`` (coverage / its
            local median), ``longest_hole`` (minutes), ``thin``.

    Returns:
        The figure, laid out (nothing more is laid out when it is saved).
    """
    title = f"{symbol}: bars per trade date (selected contract)"
    x = pd.DatetimeIndex(days["trade_date"])
    own = days["session_minutes"].astype("float64")
    minutes = own.where(own > 0, days["expected_minutes"].astype("float64"))
    bars = days["session_bars"].astype("float64").where(own > 0, days["bars"].astype("float64"))
    fig, (top, bottom) = plt.subplots(
        2,
        1,
        figsize=(14, 7.5),
        sharex=True,
        gridspec_kw={"height_ratios": [3, 1.6], "hspace": 0.08},
        layout="constrained",
    )
    top.scatter(
        x,
        minutes,
        marker="_",
        s=30 if len(days) < 400 else 12,
        color=RUNNER_UP,
        linewidths=1,
        label=f"minutes of the trade date's own CME session ({session_calendar})",
        zorder=2,
    )
    thin = days["thin"].to_numpy(dtype=bool)
    top.scatter(
        x[~thin],
        bars[~thin],
        s=_size(len(days), 5, 16),
        color=SELECTED,
        linewidths=0,
        label="bars in that session",
        zorder=3,
    )
    top.scatter(
        x[thin],
        bars[thin],
        s=22,
        color=FLIP,
        zorder=4,
        label=f"thin day (coverage < {thin_fraction:.0%} of the local median): {int(thin.sum())}",
    )
    top.set_ylim(bottom=0)
    top.set_ylabel("bars (1-minute) per trade date")
    top.grid(axis="y", alpha=0.3)
    median = float(np.nanmedian(days["coverage"])) if days["coverage"].notna().any() else 0.0
    top.set_title(
        f"{title}: {len(days)} trade dates, {int(days['bars'].sum()):,} bars, "
        f"median coverage {median:.1%} of the session's minutes",
        fontsize=11,
        loc="left",
    )
    top.legend(loc="best", fontsize=8, ncols=3, framealpha=0.9)
    hole = days["longest_hole"].to_numpy(dtype=float)
    bottom.scatter(x, np.maximum(hole, 1), s=_size(len(days), 5, 16), color=SELECTED, linewidths=0)
    bottom.scatter(x[thin], np.maximum(hole[thin], 1), s=18, color=FLIP)
    positive = np.maximum(hole[~np.isnan(hole)], 1)
    log = positive.size > 0 and positive.max() / positive.min() > 30
    if log:
        bottom.set_yscale("log")
    else:
        bottom.set_ylim(0, max(1.0, float(positive.max()) if positive.size else 1.0) * 1.1)
    bottom.set_ylabel(
        "longest stretch of a session\nwithout a bar (min" + (", log)" if log else ")")
    )
    bottom.grid(axis="y", alpha=0.3, which="both")
    bottom.set_xlabel("trade date")
    _date_axis(bottom, x.min(), x.max())
    worst = days.assign(shown=bars)[days["thin"]].nsmallest(THIN_LABELS, "relative_coverage")
    place_labels(
        top,
        [(r["trade_date"], r["shown"], f"{r['trade_date']:%Y-%m-%d}") for r in
         worst.to_dict("records")],
        gid="thin-label",
        color=FLIP,
    )  # fmt: skip
    return fig


#: Thin days labelled at most, the thinnest first.
THIN_LABELS = 8
#: Where a label may go around its point (offset points), tried in turn.
LABEL_OFFSETS = ((5, -12), (5, 4), (-5, -12), (-5, 4), (5, -24), (-5, -24), (5, 16), (-5, 16))


def place_labels(
    ax: plt.Axes,
    points: list[tuple[pd.Timestamp, float, str]],
    *,
    gid: str,
    color: str,
    **style: object,
) -> list[Annotation]:
    """Label ``points`` (x, y, text), most important first, each where it overlaps no
    label placed before it nor the legend and stays inside the axes; a point with no
    such place is left unlabelled (its marker still shows it).

    Lays the figure out first (its layout engine is then switched off, so the labels
    stay where they were checked when the figure is saved). Returns the labels placed,
    each with ``gid``.
    """
    fig = ax.get_figure()
    assert isinstance(fig, Figure)
    fig.canvas.draw()
    fig.set_layout_engine("none")
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    frame = ax.get_window_extent(renderer)
    legend = ax.get_legend()
    boxes: list = [legend.get_window_extent(renderer)] if legend is not None else []
    placed = []
    for x, y, text in points:
        for dx, dy in LABEL_OFFSETS:
            label = ax.annotate(
                text,
                (x, y),
                xytext=(dx, dy),
                textcoords="offset points",
                ha="left" if dx > 0 else "right",
                fontsize=7,
                color=color,
                gid=gid,
                zorder=5,
                **style,  # type: ignore[arg-type]
            )
            box = label.get_window_extent(renderer)
            inside = (
                box.x0 >= frame.x0 and box.x1 <= frame.x1
                and box.y0 >= frame.y0 and box.y1 <= frame.y1
            )  # fmt: skip
            if inside and not any(box.overlaps(b) for b in boxes):
                boxes.append(box)
                placed.append(label)
                break
            label.remove()
    return placed
