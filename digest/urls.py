from django.urls import path

from digest import views

app_name = "digest"
urlpatterns = [
    path("papers/", views.paper_list, name="paper_list"),
]
