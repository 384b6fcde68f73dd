"""Signup and preference forms: they parse and validate input, services.py acts on it."""

import unicodedata
from typing import Any
from zoneinfo import available_timezones

from django import forms
from django.core.validators import MaxLengthValidator
from django.utils.safestring import SafeString

from subscribers import services
from subscribers.arxiv_categories import GROUPS
from subscribers.keywords import parse_keywords
from subscribers.liked_input import MAX_TEXT_CHARS, LikedInput, LikedInputError, parse_liked_text
from subscribers.models import Subscriber, Topic
from subscribers.widgets import GroupedCheckboxes, StaticChoices, StaticSelect

TIMEZONES = sorted(name for name in available_timezones() if name not in {"localtime", "Factory", "posixrules"})
WEEKDAYS = StaticChoices(enumerate(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]))
HOURS = StaticChoices((hour, f"{hour:02d}:00") for hour in range(24))
CATEGORY_CHECKBOXES = GroupedCheckboxes(GROUPS)
MAX_AUTHORS = 30
MAX_KEYWORD_TERMS = 40
MAX_AUTHOR_LENGTH = 100


def reject_control_characters(value: str, *, allow_newlines: bool = False) -> str:
    """Printable text only: control and format characters have no business in a preference."""
    for char in value:
        if allow_newlines and char in "\r\n":
            continue
        if unicodedata.category(char).startswith("C"):
            raise forms.ValidationError("Please use letters, digits and punctuation only.")
    return value.strip()


class LimitedCharField(forms.CharField):
    """A CharField whose limit the page shows and counts instead of enforcing it with `maxlength`:
    a browser cuts pasted text at `maxlength` without a word, so the limit is checked here, with
    an error that keeps everything typed, and static/js/preferences.js counts as the reader types
    (unless `counted` is False: a limit in characters that the reader thinks of in other units)."""

    def __init__(self, *, counted: bool = True, **kwargs: Any) -> None:
        self.counted = counted
        super().__init__(**kwargs)
        for validator in self.validators:
            if isinstance(validator, MaxLengthValidator):
                validator.message = (
                    "This is %(show_value)d characters long and the limit is %(limit_value)d. "
                    "Nothing was cut: please shorten it."
                )

    def widget_attrs(self, widget):
        attrs = super().widget_attrs(widget)
        limit = attrs.pop("maxlength", None)
        if limit is not None and self.counted:
            attrs["data-limit"] = limit
        return attrs


def limit_note(limit: int) -> str:
    return f"Up to {limit:,} characters."


class PreferencesForm(forms.Form):
    topics = forms.ModelMultipleChoiceField(
        queryset=Topic.objects.all(), required=False, widget=forms.CheckboxSelectMultiple
    )
    keywords = LimitedCharField(
        required=False,
        max_length=500,
        help_text='Words and "quoted phrases", separated by commas; a leading minus excludes, a leading ~ asks '
        f'for fewer: "neural field", NeRF, -medical, ~scene. {limit_note(500)}',
        widget=forms.TextInput(attrs={"placeholder": '"neural field", NeRF, -medical', "autocomplete": "off"}),
    )
    interests = LimitedCharField(
        required=False,
        max_length=2000,
        label="Your interests, in your own words",
        help_text=f"We match this by meaning against every abstract. {limit_note(2000)}",
        widget=forms.Textarea(
            attrs={"rows": 3, "placeholder": "I work on making attention cheaper for long sequences"}
        ),
    )
    categories = forms.MultipleChoiceField(
        required=False,
        label="arXiv categories",
        choices=StaticChoices(
            (group, [(code, f"{code} · {name}") for code, name in codes.items()]) for group, codes in GROUPS.items()
        ),
        # The admin shows these; the public pages show category_checkboxes().
        widget=forms.CheckboxSelectMultiple,
    )
    category_mode = forms.ChoiceField(
        choices=Subscriber.CategoryMode.choices,
        initial=Subscriber.CategoryMode.BOOST,
        widget=forms.RadioSelect,
        label="Use categories to",
    )
    authors = LimitedCharField(
        counted=False,  # its limit is MAX_AUTHORS names; the characters only bound the input
        required=False,
        max_length=MAX_AUTHORS * (MAX_AUTHOR_LENGTH + 2),
        label="Authors to follow",
        help_text=f"One name per line, at most {MAX_AUTHORS} names.",
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Yoshua Bengio"}),
    )
    frequency = forms.ChoiceField(
        choices=Subscriber.Frequency.choices, initial=Subscriber.Frequency.DAILY, widget=forms.RadioSelect
    )
    weekday = forms.TypedChoiceField(
        coerce=int, choices=WEEKDAYS, initial=0, label="Weekday (weekly digests)", widget=StaticSelect
    )
    delivery_hour = forms.TypedChoiceField(
        coerce=int, choices=HOURS, initial=8, label="Delivery time", widget=StaticSelect
    )
    timezone = forms.ChoiceField(
        choices=StaticChoices((name, name) for name in TIMEZONES), initial="UTC", label="Time zone", widget=StaticSelect
    )
    max_papers = forms.IntegerField(min_value=1, max_value=50, initial=10, label="Papers per email")

    def clean_keywords(self) -> str:
        keywords = reject_control_characters(self.cleaned_data["keywords"])
        query = parse_keywords(keywords)
        if keywords and not query:
            raise forms.ValidationError("We found no word to look for in these keywords.")
        if len(query.include) + len(query.exclude) > MAX_KEYWORD_TERMS:
            raise forms.ValidationError(f"Please keep to {MAX_KEYWORD_TERMS} keywords or phrases.")
        return keywords

    def clean_interests(self) -> str:
        return reject_control_characters(self.cleaned_data["interests"], allow_newlines=True)

    def clean_authors(self) -> list[str]:
        text = reject_control_characters(self.cleaned_data["authors"], allow_newlines=True)
        names = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
        if len(names) > MAX_AUTHORS:
            raise forms.ValidationError(f"Follow at most {MAX_AUTHORS} authors.")
        if any(len(name) > MAX_AUTHOR_LENGTH for name in names):
            raise forms.ValidationError(f"Each name can be at most {MAX_AUTHOR_LENGTH} characters.")
        return list(dict.fromkeys(names))

    def clean(self):
        data = super().clean() or {}
        chosen = [data.get(name) for name in ("topics", "keywords", "interests", "categories", "authors")]
        if not self.errors and not any(chosen):
            raise forms.ValidationError(
                "Pick at least one topic, or give us keywords, interests, categories or authors to follow."
            )
        return data

    def preferences(self) -> services.Preferences:
        data = self.cleaned_data
        return services.Preferences(
            topics=list(data["topics"]),
            **{name: data[name] for name in services.SCALAR_PREFERENCES},
        )

    @staticmethod
    def initial_for(subscriber: Subscriber) -> dict:
        prefs = services.Preferences.of(subscriber)
        initial = {name: getattr(prefs, name) for name in services.SCALAR_PREFERENCES}
        initial["topics"] = prefs.topics
        initial["authors"] = "\n".join(prefs.authors)
        return initial

    def category_checkboxes(self) -> SafeString:
        """One collapsible list of category checkboxes per arXiv group, opened where some are chosen."""
        field = self["categories"]
        return CATEGORY_CHECKBOXES.render(field.html_name, field.value())


def liked_papers_field() -> forms.CharField:
    return forms.CharField(
        required=False,
        max_length=MAX_TEXT_CHARS,
        label="Papers you liked",
        help_text="arXiv ids, links or exact titles, one per line. We suggest papers like them.",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "2410.05254\nAttention Is All You Need"}),
    )


def read_liked_papers(text: str) -> LikedInput:
    """The liked-papers box, read whole or refused with the reader's message (nothing is saved)."""
    try:
        return parse_liked_text(text)
    except LikedInputError as refused:
        raise forms.ValidationError(str(refused)) from None


class SignupForm(PreferencesForm):
    email = forms.CharField(
        max_length=254,
        label="Your email address",
        widget=forms.EmailInput(attrs={"autocomplete": "email", "placeholder": "you@university.edu"}),
    )
    # Hidden from people by CSS; bots that fill every field reveal themselves.
    website = forms.CharField(
        required=False,
        max_length=200,
        label="Leave this empty",
        widget=forms.TextInput(attrs={"autocomplete": "off", "tabindex": "-1"}),
    )

    liked_papers = liked_papers_field()

    field_order = ["email"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            # static/js/preferences.js swaps in the browser's zone; a re-shown form keeps the choice.
            self.fields["timezone"].widget.attrs["data-browser-timezone"] = "1"

    def clean_email(self) -> str:
        try:
            return services.normalize_email(self.cleaned_data["email"])
        except services.UnsupportedLocalPart as refused:
            raise forms.ValidationError(str(refused)) from None
        except services.InvalidEmail:
            raise forms.ValidationError("Please enter a valid email address, like name@example.org.") from None

    def clean_liked_papers(self) -> LikedInput:
        return read_liked_papers(self.cleaned_data["liked_papers"])

    def liked(self) -> LikedInput:
        return self.cleaned_data.get("liked_papers") or LikedInput()

    def is_bot(self) -> bool:
        return bool(self.data.get("website"))


class ManageLinkForm(forms.Form):
    email = forms.CharField(
        max_length=254,
        label="Your email address",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    clean_email = SignupForm.clean_email
