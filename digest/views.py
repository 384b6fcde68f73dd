from datetime import date

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from digest.delivery.digest_email import build_digest_context, delivery_papers, digest_item
from digest.delivery.picks import author_names
from digest.matching.feedback import DIRECTIONS, apply_feedback
from digest.models import Delivery, Paper
from digest.papers.archive import archive_days, papers_of_day
from subscribers import services
from subscribers.models import Subscriber
from subscribers.tokens import read_payload

# Pages reached through a signed link never say who the subscriber is or hand out a link that
# changes the subscription: such links go by email to the subscriber's own address.
EMAIL_MANAGE_LINK = "email-manage-link"


def _no_feedback(paper_id: int, direction: str) -> str:
    return ""


def paper_list(request):
    papers = Paper.objects.order_by("-upvotes", "-published", "-id")
    page = Paginator(papers, 50).get_page(request.GET.get("page"))
    return render(request, "digest/paper_list.html", {"page": page})


def paper_detail(request: HttpRequest, paper_id: int) -> HttpResponse:
    """A paper's page: where a digest card links when the paper has no abstract page elsewhere."""
    paper = Paper.objects.filter(pk=paper_id).first()
    if paper is None:
        raise Http404("No such paper")
    return render(request, "digest/paper_detail.html", {"paper": paper, "authors": author_names(paper.authors)})


@never_cache
@require_http_methods(["GET", "POST"])
def feedback(request, token):
    """A link signed for one paper and direction (digest previews). GET only asks (mail scanners
    follow links); POST changes the preferences."""
    found = read_payload(token, "feedback")
    extra = found[1] if found else {}
    paper_id = extra.get("p")
    paper = Paper.objects.filter(pk=paper_id).first() if isinstance(paper_id, int) else None
    if found is None or paper is None or extra.get("d") not in DIRECTIONS:
        return render(request, "digest/feedback_invalid.html", status=404)
    return _feedback(request, found[0], paper, extra["d"])


@never_cache
@require_http_methods(["GET", "POST"])
def feedback_paper(request: HttpRequest, token: str, paper_id: int, direction: str) -> HttpResponse:
    """A link from a sent digest: its token names the digest, which must hold the paper."""
    found = read_payload(token, "feedback")
    digest_id = found[1].get("digest") if found else None
    if found is None or not isinstance(digest_id, int) or direction not in DIRECTIONS:
        return render(request, "digest/feedback_invalid.html", status=404)
    subscriber = found[0]
    digest = Delivery.objects.filter(pk=digest_id, subscriber=subscriber).first()
    paper = Paper.objects.filter(pk=paper_id, candidates__in=digest.candidates).first() if digest else None
    if paper is None:
        return render(request, "digest/feedback_invalid.html", status=404)
    return _feedback(request, subscriber, paper, direction)


def _feedback(request: HttpRequest, subscriber: Subscriber, paper: Paper, direction: str) -> HttpResponse:
    context = {"paper": paper, "direction": direction}
    if request.method == "POST":
        context["change"] = apply_feedback(subscriber, paper, direction)
        return render(request, "digest/feedback_done.html", context)
    return render(request, "digest/feedback.html", context)


@never_cache
@require_http_methods(["GET", "POST"])
def digest_view(request, token):
    """A sent digest as a page, for whoever holds its signed link (until DIGEST_LINK_LIFETIME).

    Such a link gets forwarded and posted, so the page reads only: no manage, unsubscribe or
    feedback links. Its one button emails the manage link to the subscriber's own address.
    """
    found = read_payload(token, "digest")
    delivery = None
    if found is not None and isinstance(found[1].get("d"), int):
        delivery = Delivery.objects.filter(pk=found[1]["d"], subscriber=found[0]).first()
    if found is None or delivery is None:
        # Answered here, not raised, so that even this answer carries never_cache's headers.
        return render(request, "subscribers/invalid_link.html", {"purpose": "digest"}, status=404)
    subscriber = found[0]
    if request.method == "POST":
        if request.POST.get("action") == EMAIL_MANAGE_LINK:
            services.send_manage_link(subscriber)  # at most one an hour, however often asked
        return redirect(f"{request.path}?sent={EMAIL_MANAGE_LINK}")
    shown, more = delivery_papers(delivery)
    context = build_digest_context(subscriber, shown, len(more), delivery)
    context["items"] = [digest_item(candidate, _no_feedback) for candidate in shown]
    context["more_items"] = [digest_item(candidate, _no_feedback) for candidate in more]
    context["email_manage_link"] = EMAIL_MANAGE_LINK
    context["manage_link_sent"] = request.GET.get("sent") == EMAIL_MANAGE_LINK
    response = render(request, "digest/digest_view.html", context)
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def archive_index(request):
    page = Paginator(archive_days(), 60).get_page(request.GET.get("page"))
    return render(request, "digest/archive.html", {"page": page})


def archive_day(request: HttpRequest, day: str) -> HttpResponse:
    try:
        when = date.fromisoformat(day)
    except ValueError:
        raise Http404("No such day") from None
    page = Paginator(papers_of_day(when), 100).get_page(request.GET.get("page"))
    if not page.object_list and page.number == 1:
        raise Http404("No papers that day")
    return render(request, "digest/archive_day.html", {"page": page, "day": when})
