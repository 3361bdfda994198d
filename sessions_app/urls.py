# The session pages: Tasks, Upcoming, Completed, Canceled, My sessions, details, the pickers
# (book, reschedule, propose another time) and the one-click actions.
from django.urls import path

from sessions_app import views

app_name = "sessions"

urlpatterns = [
    path("tasks/", views.tasks, name="tasks"),
    path("upcoming/", views.upcoming, name="upcoming"),
    path("completed/", views.completed, name="completed"),
    path("canceled/", views.canceled, name="canceled"),
    path("students/", views.students, name="students"),
    path("students/<int:student_id>/", views.student_detail, name="student_detail"),
    path("packages/<int:pk>/extend/", views.package_extend, name="package_extend"),
    path("my/", views.my_sessions, name="my_sessions"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/book/", views.book, name="book"),
    path("<int:pk>/withdraw/", views.withdraw, name="withdraw"),
    path("<int:pk>/accept/", views.accept, name="accept"),
    path("<int:pk>/decline/", views.decline, name="decline"),
    path("<int:pk>/reschedule/", views.reschedule, name="reschedule"),
    path("<int:pk>/reschedule/confirm/", views.confirm_reschedule, name="confirm_reschedule"),
    path("<int:pk>/reschedule/counter/", views.counter_propose, name="counter_propose"),
    path("<int:pk>/reschedule/keep/", views.decline_reschedule, name="decline_reschedule"),
    path("<int:pk>/reschedule/withdraw/", views.withdraw_proposal, name="withdraw_proposal"),
    path("<int:pk>/keep-time/", views.keep_time, name="keep_time"),
    path("<int:pk>/cancel/", views.cancel, name="cancel"),
    path("<int:pk>/refund-credit/", views.refund_credit, name="refund_credit"),
]
