from django.urls import path, re_path

from digest import liked_views, views

app_name = "digest"
urlpatterns = [
    path("papers/", views.paper_list, name="paper_list"),
    path("papers/<int:paper_id>/", views.paper_detail, name="paper"),
    path("feedback/<str:token>/", views.feedback, name="feedback"),
    path("feedback/<str:token>/<int:paper_id>/<str:direction>/", views.feedback_paper, name="feedback_paper"),
    path("digest/<str:token>/", views.digest_view, name="view"),
    path("manage/<str:token>/liked/", liked_views.liked_papers, name="liked_papers"),
    path("manage/<str:token>/liked/<int:liked_id>/remove/", liked_views.remove_liked, name="remove_liked"),
    path("manage/<str:token>/marked/<int:marked_id>/undo/", liked_views.undo_marked, name="undo_marked"),
    path("archive/", views.archive_index, name="archive"),
    re_path(r"^archive/(?P<day>\d{4}-\d{2}-\d{2})/$", views.archive_day, name="archive_day"),
]
