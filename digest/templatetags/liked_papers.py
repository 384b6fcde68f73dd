"""The liked-papers list inside the manage page: `{% load liked_papers %}{% liked_papers_section %}`.

A tag, like `trending_papers`, so that the subscribers app's page shows rows of this app without
importing it.
"""

from django import template

from digest.models import LikedPaper, MarkedPaper
from digest.papers.liked_papers import liked_list

register = template.Library()


@register.inclusion_tag("digest/_liked_papers.html", takes_context=True)
def liked_papers_section(context: template.Context) -> dict:
    subscriber = context["subscriber"]
    rows = liked_list(subscriber)
    marked = list(MarkedPaper.objects.filter(subscriber=subscriber).select_related("paper"))
    return {
        "more": [row for row in marked if row.direction == MarkedPaper.Direction.MORE],
        "less": [row for row in marked if row.direction == MarkedPaper.Direction.LESS],
        "csrf_token": context.get("csrf_token"),
        "token": context["token"],
        "liked": rows,
        "waiting": sum(row.state == LikedPaper.State.WAITING for row in rows),
        "not_found": sum(row.state == LikedPaper.State.NOT_FOUND for row in rows),
    }
