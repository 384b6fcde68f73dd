from django.core.paginator import Paginator
from django.shortcuts import render

from digest.models import Paper


def paper_list(request):
    papers = Paper.objects.order_by("-upvotes", "-published", "-id")
    page = Paginator(papers, 50).get_page(request.GET.get("page"))
    return render(request, "digest/paper_list.html", {"page": page})
