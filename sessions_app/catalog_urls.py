# Owned by the catalog work (issue 3): coaches directory, coach page, buying, coach offerings.
from django.urls import path
from django.views.generic import TemplateView

app_name = "catalog"
placeholder = TemplateView.as_view(template_name="placeholder.html")

urlpatterns = [
    path("", placeholder, name="coaches"),
    path("<int:coach_id>/", placeholder, name="coach_detail"),
    path("offerings/", placeholder, name="offerings"),
]
