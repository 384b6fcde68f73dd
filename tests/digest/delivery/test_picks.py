"""Loading a digest's papers: each read once per row version on PostgreSQL, never stale."""

import pytest

from digest.delivery.picks import forget_papers, load_papers
from digest.models import Paper

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def nothing_held():
    forget_papers()
    yield
    forget_papers()


def test_it_loads_each_paper_as_a_row_and_leaves_out_deleted_ones():
    paper = Paper.objects.create(
        guid="a", title="A  title", authors=[{"name": "Ada  Lovelace"}, "Bo"], categories=["cs.LG"]
    )
    deleted = Paper.objects.create(guid="b", title="Deleted").id
    Paper.objects.filter(id=deleted).delete()

    rows = load_papers([paper.id, deleted, paper.id])

    assert list(rows) == [paper.id]
    assert rows[paper.id].title == "A  title"
    assert rows[paper.id].authors == ("Ada Lovelace", "Bo")
    assert rows[paper.id].categories == ("cs.LG",)


@pytest.mark.postgres
def test_a_paper_read_before_is_not_read_again_until_it_changes(on_postgres, django_assert_num_queries):
    paper = Paper.objects.create(guid="a", title="First", upvotes=1)
    first = load_papers([paper.id])[paper.id]

    with django_assert_num_queries(1):
        assert load_papers([paper.id])[paper.id] is first

    Paper.objects.filter(id=paper.id).update(upvotes=2)
    assert load_papers([paper.id])[paper.id].upvotes == 2
    paper.title = "Second"
    paper.save()
    assert load_papers([paper.id])[paper.id].title == "Second"
