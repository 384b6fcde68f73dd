"""The admin dashboard: the stats selectors drawn as SVG charts."""

from django.contrib import admin
from django.template.response import TemplateResponse

from digest.delivery.refusal_alarm import message_refusals
from digest.ops import charts, stats

STATUS_COLORS = {
    "active": "#16a34a",
    "pending": "#d97706",
    "paused": "#6b7280",
    "unsubscribed": "#dc2626",
    "bounced": "#7c3aed",
}


def dashboard_context(days: int = stats.DEFAULT_DAYS) -> dict:
    subscribers = stats.subscribers_over_time(days)
    digests = stats.digests_per_day(days)
    papers = stats.papers_per_day_by_source(days)
    topics = stats.most_followed_topics()
    return {
        "days": days,
        "totals": stats.totals(),
        "queue_length": stats.queue_length(),
        "queue_name": stats.queue_name(),
        # Refused messages (not addresses): the alarm's window, and the last day for scale.
        "refused_recently": message_refusals(),
        "refused_today": message_refusals(24 * 60),
        "charts": [
            charts.line_chart(
                f"Subscribers by status, last {days} days",
                subscribers.labels,
                [
                    charts.Series(name, values, STATUS_COLORS.get(name, ""))
                    for name, values in subscribers.series.items()
                ],
                chart_id="chart-subscribers",
            ),
            charts.stacked_bar_chart(
                f"Digests per day, last {days} days",
                digests.labels,
                [
                    charts.Series("sent", digests.series["sent"], "#16a34a"),
                    charts.Series("failed", digests.series["failed"], "#dc2626"),
                ],
                chart_id="chart-digests",
            ),
            charts.stacked_bar_chart(
                f"New papers per day by source, last {days} days",
                papers.labels,
                [charts.Series(name, values) for name, values in papers.series.items()],
                chart_id="chart-papers",
            ),
            charts.bar_chart(
                "Most followed topics (active subscribers)",
                [name for name, _ in topics],
                [count for _, count in topics],
                name="followers",
                chart_id="chart-topics",
            ),
        ],
    }


PERIODS = (7, 30, 90)


def dashboard(request):
    days = int(request.GET["days"]) if request.GET.get("days") in {str(p) for p in PERIODS} else stats.DEFAULT_DAYS
    context = {**admin.site.each_context(request), "title": "Dashboard", "periods": PERIODS, **dashboard_context(days)}
    return TemplateResponse(request, "admin/dashboard.html", context)
