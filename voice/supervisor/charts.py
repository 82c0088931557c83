"""Today's charts as inline SVG drawn on the server: no build step, no script, nothing fetched from elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

from directo.core.models import utcnow
from directo.core.services import Services
from directo.core.states import CallOutcome
from voice.supervisor.board import Today, kept, load_today
from voice.supervisor.call_log import ANOTHER, LABELS, OUTCOMES, PREVIOUS, outcome_label

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 560, 180, 30, 24, 40
# The two small charts sit side by side: drawn narrower so their text stays readable.
PAIR_WIDTH = 300
CALL_SERIES = [(OUTCOMES[PREVIOUS], "#1a7f4b"), (OUTCOMES[ANOTHER], "#57b27f"),
               (LABELS[CallOutcome.CALLBACK], "#1f5fbf"), (LABELS[CallOutcome.ABANDONED], "#b42318"),
               ("other", "#98a2b3")]
ANSWER_BUCKETS = [(0, 5), (5, 10), (10, 20), (20, 30), (30, 60), (60, None)]
PROMISE_SERIES = [("kept", "#1a7f4b"), ("late", "#b3570b"), ("broken", "#b42318"), ("open", "#98a2b3")]


def stacked_bars(title: str, labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[int]]],
                 label_every: int = 1, width: int = WIDTH) -> Markup:
    """One stacked bar per label; `series` is (name, colour, value per label). Accessible: title and legend."""
    totals = [sum(values[i] for _, _, values in series) for i in range(len(labels))]
    top = max(totals, default=0) or 1
    plot_w, plot_h = width - LEFT - 8, HEIGHT - BOTTOM - TOP
    step = plot_w / max(len(labels), 1)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {HEIGHT}" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>",
             f'<text x="{LEFT - 4}" y="{TOP + 8}" class="axis" text-anchor="end">{top}</text>',
             f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{width - 8}" y2="{TOP + plot_h}" class="base"/>']
    for i, label in enumerate(labels):
        x, y = LEFT + i * step + step * 0.12, TOP + plot_h
        for name, colour, values in series:
            if values[i]:
                h = plot_h * values[i] / top
                y -= h
                parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{step * 0.76:.1f}" height="{h:.1f}" '
                             f'fill="{colour}"><title>{escape(label)}: {values[i]} {escape(name)}</title></rect>')
        if i % label_every == 0:
            parts.append(f'<text x="{x + step * 0.38:.1f}" y="{HEIGHT - 10}" class="axis" '
                         f'text-anchor="middle">{escape(label)}</text>')
    legend_x, legend_y = LEFT, 4
    for name, colour, values in series:
        text = f"{name} ({sum(values)})"
        if legend_x + 22 + 5.6 * len(text) > width:  # wrap the legend rather than cut it
            legend_x, legend_y = LEFT, legend_y + 13
        parts.append(f'<rect x="{legend_x}" y="{legend_y}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{legend_x + 14}" y="{legend_y + 9}" class="legend">{escape(text)}</text>')
        legend_x += 22 + 5.6 * len(text)
    parts.append("</svg>")
    return Markup("".join(parts))


def _calls_per_hour(today: Today) -> Markup:
    names = [name for name, _ in CALL_SERIES]
    counts = {name: [0] * 24 for name in names}
    for call in today.calls:
        label = outcome_label(call)
        counts[label if label in counts else "other"][call.started_at.hour] += 1
    return stacked_bars("Calls per hour (UTC) by outcome", [f"{h:02}" for h in range(24)],
                        [(name, colour, counts[name]) for name, colour in CALL_SERIES], label_every=2)


def _answer_times(today: Today) -> Markup:
    counts = [0] * len(ANSWER_BUCKETS)
    for call in today.calls:
        if call.answered_at is None:
            continue
        waited = (call.answered_at - call.started_at).total_seconds()
        counts[next(i for i, (low, high) in enumerate(ANSWER_BUCKETS) if high is None or waited < high)] += 1
    labels = [f"{low}-{high}s" if high else f"{low}s+" for low, high in ANSWER_BUCKETS]
    return stacked_bars("Time to a person (answered calls)", labels, [("answered calls", "#1f5fbf", counts)],
                        width=PAIR_WIDTH)


def _promise_keeping(today: Today) -> Markup:
    now = utcnow()
    counts = {name: [0] * 24 for name, _ in PROMISE_SERIES}
    for callback in today.callbacks:
        state = kept(callback, now)
        if state in counts and callback.promised_by >= today.since:
            counts[state][callback.promised_by.hour] += 1
    return stacked_bars("Callback promises by hour due (UTC)", [f"{h:02}" for h in range(24)],
                        [(name, colour, counts[name]) for name, colour in PROMISE_SERIES], label_every=4,
                        width=PAIR_WIDTH)


def today(svc: Services) -> dict[str, Any]:
    with svc.db.session() as session:
        loaded = load_today(session)
    return {"calls": _calls_per_hour(loaded), "answers": _answer_times(loaded), "promises": _promise_keeping(loaded)}
