from django.urls import path

from refunds import views

app_name = "payments"

urlpatterns = [
    path("<int:pk>/pay/", views.pay, name="pay"),
    path("<int:pk>/card/", views.pay_card, name="pay_card"),
    path("<int:pk>/return/", views.pay_return, name="pay_return"),
    path("stripe/webhook/", views.stripe_webhook, name="stripe_webhook"),
]
