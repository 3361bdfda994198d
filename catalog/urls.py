from django.urls import path

from catalog import views

app_name = "catalog"

urlpatterns = [
    path("", views.coaches, name="coaches"),
    path("<int:coach_id>/", views.coach_detail, name="coach_detail"),
    path("buy/<int:pk>/", views.offering_buy, name="offering_buy"),
    path("offerings/", views.offerings, name="offerings"),
    path("offerings/new/", views.offering_create, name="offering_create"),
    path("offerings/<int:pk>/edit/", views.offering_edit, name="offering_edit"),
    path("offerings/<int:pk>/sale/", views.offering_set_active, name="offering_set_active"),
]
