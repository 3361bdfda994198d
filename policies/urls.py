from django.urls import path

from policies import views

app_name = "policies"

urlpatterns = [path("", views.edit, name="edit")]
