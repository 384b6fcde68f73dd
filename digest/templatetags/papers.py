"""Papers for pages outside the digest app: `{% load papers %}{% trending_papers as papers %}`.

The signup page shows this week's trending papers; a tag lets its template ask for them by name,
as it names the paper list's URL, without the subscribers app importing this one.
"""

from django import template

from digest.models import Paper
from digest.papers.archive import trending_this_week

register = template.Library()


@register.simple_tag
def trending_papers(limit: int = 5) -> list[Paper]:
    return trending_this_week(limit)
