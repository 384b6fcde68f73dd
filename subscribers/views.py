"""Signup, confirmation, manage and unsubscribe pages: parse the request, call services, render."""

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from subscribers import ratelimit, services
from subscribers.forms import ManageLinkForm, PreferencesForm, SignupForm
from subscribers.models import Subscriber
from subscribers.scheduling import next_delivery_text
from subscribers.tokens import make_token, read_spent_token, read_token

log = logging.getLogger(__name__)

# Fixed texts chosen by a query parameter: nothing from the URL is ever echoed into the page.
NOTICES = {
    "confirmed": "You're subscribed.",
    "saved": "Your preferences are saved.",
    "paused": "Your digest is paused. Resume it whenever you like.",
    "resumed": "Your digest is back on.",
    "resubscribed": "You're subscribed again, with the preferences below.",
    # The liked-papers list (digest/liked_views.py) comes back here.
    "liked": "Your liked papers are saved. Those we don't hold yet are being fetched from arXiv.",
    "unliked": "The paper is no longer in your liked list.",
    "undone": "Undone: that term is no longer in your keywords.",
    "unmarked": "Undone: your digest no longer learns from that click.",
}


def invalid_link(request: HttpRequest, purpose: str) -> HttpResponse:
    return render(request, "subscribers/invalid_link.html", {"purpose": purpose}, status=400)


def rate_limited(request: HttpRequest) -> HttpResponse:
    response = render(request, "subscribers/rate_limited.html", status=429)
    response["Retry-After"] = str(ratelimit.HOUR)
    return response


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None)
    if request.method == "POST":
        valid = form.is_valid()
        if not ratelimit.signup_allowed(request, form.cleaned_data.get("email") if valid else None):
            return rate_limited(request)
        if form.is_bot():
            log.info("signup honeypot filled, ignored")
            return redirect("subscribers:check_inbox")
        if valid:
            services.queue_signup(form.cleaned_data["email"], form.preferences(), form.liked())
            return redirect("subscribers:check_inbox")
    return render(request, "subscribers/signup.html", {"form": form}, status=400 if form.is_bound else 200)


def check_inbox(request: HttpRequest) -> HttpResponse:
    return render(request, "subscribers/check_inbox.html")


@require_http_methods(["GET", "POST"])
def request_link(request: HttpRequest) -> HttpResponse:
    form = ManageLinkForm(request.POST or None)
    if request.method == "POST":
        valid = form.is_valid()
        if not ratelimit.signup_allowed(request, form.cleaned_data.get("email") if valid else None):
            return rate_limited(request)
        if valid:
            services.queue_manage_link_request(form.cleaned_data["email"])
            return redirect("subscribers:check_inbox")
    return render(request, "subscribers/request_link.html", {"form": form}, status=400 if form.is_bound else 200)


@never_cache
@require_http_methods(["GET", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    subscriber = read_token(token, "confirm")
    if subscriber is None or subscriber.status != Subscriber.Status.PENDING:
        spent = read_spent_token(token, "confirm")
        if spent is not None:  # ours, and used or replaced: say which, and change nothing
            return render(request, "subscribers/confirm_spent.html", {"subscriber": spent})
        return invalid_link(request, "confirm")
    if request.method == "POST":
        services.confirm(subscriber)
        return redirect(manage_url(subscriber) + "?done=confirmed")
    return render(request, "subscribers/confirm.html", {"subscriber": subscriber})


def manage_url(subscriber: Subscriber) -> str:
    return reverse("subscribers:manage", args=[make_token(subscriber, "manage")])


# Buttons of the manage page besides "Save": each a service that changes only its own subscriber.
MANAGE_ACTIONS = {"pause": services.pause, "resume": services.resume, "resubscribe": services.resubscribe}
# Undo of one term a "more/less like this" click wrote; the term comes in the POST.
UNDO_LEARNED = "undo_learned"
TOO_MANY_CHANGES = (
    "You've made many changes in the last hour, so we're pausing for a while: each change re-reads "
    "the latest papers for you. Nothing was saved this time; what you typed is still in the form. "
    "Please try again later."
)


@never_cache
@require_http_methods(["GET", "POST"])
def manage(request: HttpRequest, token: str) -> HttpResponse:
    subscriber = read_token(token, "manage")
    if subscriber is None:
        return invalid_link(request, "manage")
    action = request.POST.get("action")
    if request.method == "POST" and not ratelimit.manage_allowed(subscriber.pk):
        typed = action not in MANAGE_ACTIONS and action != UNDO_LEARNED
        form = PreferencesForm(request.POST) if typed else _saved_preferences(subscriber)
        response = _manage_page(request, subscriber, token, form, status=429, alert=TOO_MANY_CHANGES)
        response["Retry-After"] = str(ratelimit.HOUR)
        return response
    if request.method == "POST" and action in MANAGE_ACTIONS:
        MANAGE_ACTIONS[action](subscriber)
        return redirect(f"{request.path}?done={action}d")
    if request.method == "POST" and action == UNDO_LEARNED:
        # A term that is not (or no longer) learned changes nothing; the page says the same.
        services.undo_learned_keyword(subscriber, request.POST.get("term", ""))
        return redirect(f"{request.path}?done=undone#learned")
    if request.method == "POST":
        form = PreferencesForm(request.POST)
        if form.is_valid():
            services.update_preferences(subscriber, form.preferences())
            return redirect(f"{request.path}?done=saved")
        return _manage_page(request, subscriber, token, form, status=400)
    done = request.GET.get("done", "")
    notice = NOTICES.get(done)
    if done == "confirmed" and subscriber.next_delivery_at:
        notice = f"{notice} Your first digest arrives {next_delivery_text(subscriber)}."
    return _manage_page(request, subscriber, token, _saved_preferences(subscriber), notice=notice)


def _saved_preferences(subscriber: Subscriber) -> PreferencesForm:
    return PreferencesForm(initial=PreferencesForm.initial_for(subscriber))


def _manage_page(
    request: HttpRequest,
    subscriber: Subscriber,
    token: str,
    form: PreferencesForm,
    *,
    status: int = 200,
    notice: str | None = None,
    alert: str | None = None,
) -> HttpResponse:
    context = {
        "form": form,
        "subscriber": subscriber,
        "token": token,
        "unsubscribe_token": make_token(subscriber, "unsubscribe"),
        "notice": notice,
        "alert": alert,
        "next_delivery": next_delivery_text(subscriber),
        "learned": _learned(subscriber),
    }
    return render(request, "subscribers/manage.html", context, status=status)


def _learned(subscriber: Subscriber) -> dict[str, list[str]]:
    """What clicks wrote, by direction: `~word` is "less of", anything else "more of". A term a
    marked paper wrote is listed with that paper (its Undo takes back the whole click), not here."""
    with_paper = set(subscriber.marked_papers.exclude(keyword="").values_list("keyword", flat=True))
    terms = [term for term in services.learned_keywords(subscriber) if term not in with_paper]
    return {
        "less": [term for term in terms if term.startswith("~")],
        "more": [term for term in terms if not term.startswith("~")],
    }


@never_cache
@require_http_methods(["GET"])
def export(request: HttpRequest, token: str) -> HttpResponse:
    subscriber = read_token(token, "manage")
    if subscriber is None:
        return invalid_link(request, "manage")
    response = JsonResponse(services.export_data(subscriber), json_dumps_params={"indent": 2})
    response["Content-Disposition"] = 'attachment; filename="paperboy-subscription.json"'
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def delete(request: HttpRequest, token: str) -> HttpResponse:
    subscriber = read_token(token, "manage")
    if subscriber is None:
        return invalid_link(request, "manage")
    if request.method == "POST":
        services.delete_subscriber(subscriber)
        return render(request, "subscribers/deleted.html")
    return render(request, "subscribers/delete.html", {"subscriber": subscriber, "token": token})


# RFC 8058: mail providers POST here without cookies or a CSRF token. The signed token is what
# authorises the change, and it only ever unsubscribes its own subscriber.
@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    subscriber = read_token(token, "unsubscribe")
    one_click = request.method == "POST" and request.POST.get("List-Unsubscribe") == "One-Click"
    if subscriber is None:
        if one_click:
            return HttpResponse("This unsubscribe link is not valid.\n", status=400, content_type="text/plain")
        return invalid_link(request, "unsubscribe")
    if request.method == "POST":
        services.unsubscribe(subscriber)
        if one_click:
            return HttpResponse("Unsubscribed.\n", content_type="text/plain")
        return render(request, "subscribers/unsubscribed.html")
    return render(request, "subscribers/unsubscribe.html", {"subscriber": subscriber})
