"""Form widgets whose option markup is escaped once per process, not rendered per option per page.

Django renders every <option> and checkbox through its own template: some 800 of them made the
signup and manage pages cost 30 to 90 ms of CPU each (bench/signup_render.py). The choices here never change while the
process runs, so their HTML is built once and each render only marks what is chosen.
"""

from collections.abc import Iterable, Iterator, Mapping
from functools import cached_property

from django import forms
from django.forms.renderers import BaseRenderer
from django.utils.choices import BaseChoiceIterator
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe


def html_attrs(attrs: Mapping[str, object]) -> str:
    """The attributes as django/forms/widgets/attrs.html writes them: False omitted, True bare."""
    return "".join(
        f" {conditional_escape(name)}"
        if value is True
        else f' {conditional_escape(name)}="{conditional_escape(str(value))}"'
        for name, value in attrs.items()
        if value is not False
    )


class StaticChoices(BaseChoiceIterator):
    """Choices shared by every form instance: Django deep-copies a form's fields for each form."""

    def __init__(self, choices: Iterable[tuple[object, object]]):
        self.pairs = tuple(
            (value, tuple(label) if isinstance(label, (list, tuple)) else label) for value, label in choices
        )

    def __iter__(self) -> Iterator[tuple[object, object]]:
        return iter(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __copy__(self) -> "StaticChoices":
        return self

    def __deepcopy__(self, memo: dict) -> "StaticChoices":
        return self

    @cached_property
    def option_tags(self) -> tuple[tuple[str, str], ...]:
        """(value as the form compares it, escaped <option> tag) in choice order, spaced as Select spaces them."""
        if any(isinstance(label, tuple) for _, label in self.pairs):
            raise ValueError("StaticSelect renders flat choices only, not option groups.")
        return tuple(
            (
                str(value),
                f'\n  <option value="{conditional_escape(str(value))}">{conditional_escape(str(label))}</option>\n',
            )
            for value, label in self.pairs
        )


class StaticSelect(forms.Select):
    """A single-choice <select> with the markup of Django's Select; give it StaticChoices to build it once."""

    def render(
        self, name: str, value: object, attrs: dict[str, object] | None = None, renderer: BaseRenderer | None = None
    ) -> SafeString:
        choices = self.choices if isinstance(self.choices, StaticChoices) else StaticChoices(self.choices)
        chosen = set(self.format_value(value))
        options = []
        for option_value, tag in choices.option_tags:
            if option_value in chosen:
                tag = tag.replace(">", " selected>", 1)
                chosen = set()  # like Select, only the first match is selected
            options.append(tag)
        final_attrs = html_attrs(self.build_attrs(self.attrs, attrs))
        html = f'<select name="{conditional_escape(name)}"{final_attrs}>{"".join(options)}\n</select>'
        # S308: the name, every attribute, value and label were escaped where they were put in.
        return mark_safe(html)  # noqa: S308


class GroupedCheckboxes:
    """Checkboxes in one collapsible <details> per group, opened when it holds a chosen box.

    groups maps a group name to {value: description}; each box shows its value and description.
    """

    def __init__(self, groups: Mapping[str, Mapping[str, str]]):
        self.groups = tuple(
            (
                conditional_escape(group),
                tuple(
                    (
                        value,
                        f' value="{conditional_escape(value)}"',
                        f"> <code>{conditional_escape(value)}</code> "
                        f"<span>{conditional_escape(description)}</span></label>",
                    )
                    for value, description in items.items()
                ),
            )
            for group, items in groups.items()
        )

    def render(self, name: str, chosen: Iterable[str] | None) -> SafeString:
        chosen = {str(value) for value in chosen or ()}
        box = f'\n    <label class="category"><input type="checkbox" name="{conditional_escape(name)}"'
        html = []
        for group, items in self.groups:
            count = sum(value in chosen for value, _, _ in items)
            opened, badge = (" open", f' <span class="badge">{count} chosen</span>') if count else ("", "")
            html.append(
                f'<details class="categories"{opened}>\n  <summary>{group}{badge}</summary>\n'
                '  <div class="category-grid">'
            )
            html.extend(
                f"{box}{value_attr}{' checked' if value in chosen else ''}{rest}" for value, value_attr, rest in items
            )
            html.append("\n  </div>\n</details>\n")
        # S308: the name, groups, values and descriptions were escaped where they were put in.
        return mark_safe("".join(html))  # noqa: S308
