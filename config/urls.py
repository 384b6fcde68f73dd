from django.contrib import admin
from django.urls import include, path

from digest.ops.dashboard import dashboard
from digest.ops.health import healthz
from digest.ops.metrics import metrics
from web import admin_login, webhooks

urlpatterns = [
    path("admin/dashboard/", admin.site.admin_view(dashboard), name="admin-dashboard"),
    # Before admin.site.urls, so that this rate-limited view answers /admin/login/.
    path("admin/login/", admin_login.login, name="admin-login"),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    # Prometheus: staff, or a scraper holding METRICS_TOKEN; 404 for anyone else.
    path("metrics", metrics, name="metrics"),
    # Provider webhooks (bounces, complaints): 404 unless ANYMAIL_WEBHOOK_SECRET is set.
    path("anymail/", include((webhooks.guarded_patterns(), "anymail"))),
    path("", include("digest.urls")),
    path("", include("subscribers.urls")),
]
