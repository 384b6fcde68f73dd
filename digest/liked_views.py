"""The liked-papers list on the manage page: add (pasted ids or titles, a BibTeX file) and remove;
and the papers marked "more/less like this" in digests, each with Undo.

Reached with the subscriber's manage token, like the manage page, and limited like its other
changes. The list itself is shown by the `liked_papers` template tag inside the manage page.
"""

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from digest.matching.feedback import undo_mark
from digest.matching.reader_model import retrain
from digest.papers.liked_papers import add_liked_papers, liked_list, remove_liked_paper
from subscribers import ratelimit
from subscribers.forms import liked_papers_field, read_liked_papers
from subscribers.liked_input import BIBTEX_TOO_LARGE, MAX_BIBTEX_BYTES, LikedInput, LikedInputError, parse_bibtex
from subscribers.models import Subscriber
from subscribers.tokens import read_token
from subscribers.views import TOO_MANY_CHANGES, invalid_link, manage_url


class AddLikedPapersForm(forms.Form):
    liked_papers = liked_papers_field()
    bibtex = forms.FileField(required=False, label="Or import a BibTeX file", help_text="At most 1 MB, 100 papers.")

    def clean_liked_papers(self) -> LikedInput:
        return read_liked_papers(self.cleaned_data["liked_papers"])

    def clean_bibtex(self) -> LikedInput:
        upload = self.cleaned_data.get("bibtex")
        if not upload:
            return LikedInput()
        # Checked before reading: a huge upload is refused without loading it.
        if upload.size is None or upload.size > MAX_BIBTEX_BYTES:
            raise forms.ValidationError(BIBTEX_TOO_LARGE)
        try:
            return parse_bibtex(upload.read(MAX_BIBTEX_BYTES + 1))
        except LikedInputError as refused:
            raise forms.ValidationError(str(refused)) from None

    def clean(self) -> dict:
        data = super().clean() or {}
        if not self.errors and not data.get("liked_papers") and not data.get("bibtex"):
            raise forms.ValidationError("Paste arXiv ids or titles, or choose a BibTeX file.")
        return data

    def liked(self) -> LikedInput:
        text, bibtex = self.cleaned_data["liked_papers"], self.cleaned_data["bibtex"]
        return LikedInput(
            arxiv_ids=tuple(dict.fromkeys(text.arxiv_ids + bibtex.arxiv_ids)),
            titles=tuple(dict.fromkeys(text.titles + bibtex.titles)),
        )


def _page(
    request: HttpRequest, subscriber: Subscriber, token: str, form: AddLikedPapersForm, status: int = 200
) -> HttpResponse:
    context = {"subscriber": subscriber, "token": token, "form": form, "liked": liked_list(subscriber)}
    return render(request, "digest/liked_papers.html", context, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
def liked_papers(request: HttpRequest, token: str) -> HttpResponse:
    subscriber = read_token(token, "manage")
    if subscriber is None:
        return invalid_link(request, "manage")
    if request.method == "GET":
        return _page(request, subscriber, token, AddLikedPapersForm())
    form = AddLikedPapersForm(request.POST, request.FILES)
    if not ratelimit.manage_allowed(subscriber.pk):
        form.add_error(None, TOO_MANY_CHANGES)
        response = _page(request, subscriber, token, form, status=429)
        response["Retry-After"] = str(ratelimit.HOUR)
        return response
    if form.is_valid():
        try:
            add_liked_papers(subscriber, form.liked())
        except LikedInputError as refused:
            form.add_error(None, str(refused))
        else:
            # The liked papers are positives of the reader's model: the re-match that adding papers
            # we hold queues retrains it (runs.match_recent_papers), as does the fetch of the others.
            return redirect(manage_url(subscriber) + "?done=liked#liked-papers")
    return _page(request, subscriber, token, form, status=400)


def _allowed_change(request: HttpRequest, token: str) -> Subscriber | HttpResponse:
    """The subscriber a one-button change on the manage page acts for, or the answer refusing it:
    an invalid link, or too many changes this hour."""
    subscriber = read_token(token, "manage")
    if subscriber is None:
        return invalid_link(request, "manage")
    if not ratelimit.manage_allowed(subscriber.pk):
        response = _page(request, subscriber, token, AddLikedPapersForm(), status=429)
        response["Retry-After"] = str(ratelimit.HOUR)
        return response
    return subscriber


@never_cache
@require_http_methods(["POST"])
def remove_liked(request: HttpRequest, token: str, liked_id: int) -> HttpResponse:
    subscriber = _allowed_change(request, token)
    if isinstance(subscriber, HttpResponse):
        return subscriber
    if not remove_liked_paper(subscriber, liked_id):
        # Another subscriber's row, or none: nothing is removed, and nothing says which.
        return render(request, "digest/liked_not_yours.html", {"token": token}, status=404)
    retrain(subscriber)
    return redirect(manage_url(subscriber) + "?done=unliked#liked-papers")


@never_cache
@require_http_methods(["POST"])
def undo_marked(request: HttpRequest, token: str, marked_id: int) -> HttpResponse:
    subscriber = _allowed_change(request, token)
    if isinstance(subscriber, HttpResponse):
        return subscriber
    if not undo_mark(subscriber, marked_id):
        # Another subscriber's click, or one already undone: nothing changes, and nothing says which.
        return render(request, "digest/marked_not_yours.html", {"token": token}, status=404)
    return redirect(manage_url(subscriber) + "?done=unmarked#marked-papers")
